"""Build the demo e-book, `small-business-email-playbook.pdf`, with fpdf2.

Run `pip install -e ".[ebook]" && python content/assets/build_ebook.py` after editing the text
below; the PDF is kept in the repository so a fresh site can hand it out without a build step.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

FILE_NAME = "small-business-email-playbook.pdf"
TITLE = "The Small Business Email Playbook"
SUBTITLE = "Build a list, write a welcome series and measure what pays, in a few hours a month."
CHAPTERS = [
    ("1. Grow a list that wants to hear from you",
     ["Offer something worth an email address: a guide, a checklist, a discount on a first order, "
      "a seat at a workshop. Put the offer where people already are: the home page, the end of "
      "each blog post, the receipt.",
      "Ask only for what you need now. An email address and a first name are enough to begin; "
      "ask for the rest later, one question at a time, when you have earned it."]),
    ("2. Write a welcome series in an afternoon",
     ["Email 1, sent at once: deliver what you promised and say who you are.",
      "Email 2, two days later: the most useful thing you know, with no sales pitch.",
      "Email 3, a week later: a story from a customer, and one clear invitation to buy or book."]),
    ("3. Know what each email earns",
     ["Track four numbers: delivered, opened, clicked, and revenue per email. Opens tell you about "
      "subject lines, clicks about content, revenue about the offer.",
      "Tie every sale to the emails and pages that came before it, not only the last click."]),
    ("4. Stay on the right side of the law",
     ["Keep proof of consent: when, on which form, with which words. Make unsubscribing one "
      "click. Keep personal data only as long as you need it, and delete it when asked."]),
    ("Templates",
     ["Welcome: 'Here is your playbook - and who we are.'",
      "Useful: 'The one change that doubled our replies.'",
      "Story: 'How Raman & Daughters Tea sold out in a week.'",
      "Re-engage: 'Still want to hear from us?'",
      "Event: 'Join us live on Thursday.'",
      "Follow-up: 'The recording, and the one slide everyone asked for.'"]),
    ("Checklist",
     ["[ ] A sign-up offer on the home page and every post",
      "[ ] A three-email welcome series, written and scheduled",
      "[ ] Consent wording saved with each sign-up",
      "[ ] One-click unsubscribe in every email",
      "[ ] A monthly look at revenue per email"]),
]


def build(path: Path) -> Path:
    pdf = FPDF(format=(148, 210))  # A5, in millimetres
    pdf.set_title(TITLE)
    pdf.set_author("Brightwater Studio")
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))  # a reproducible file
    pdf.set_margins(16, 18)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 22)
    pdf.multi_cell(0, 10, TITLE)
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 12)
    pdf.multi_cell(0, 6, SUBTITLE)
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(0, 5, "Brightwater Studio - a fictional company: the demo site of Magnet.")
    for heading, paragraphs in CHAPTERS:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, heading)
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(2)
    pdf.output(str(path))
    return path


if __name__ == "__main__":
    print(build(Path(__file__).resolve().parent / FILE_NAME))
