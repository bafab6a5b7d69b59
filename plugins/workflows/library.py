"""Ready-made workflows: six common journeys, each one call from a draft the marketer edits.

`create_from(slug)` writes the emails a template needs as ordinary email templates (reusing one
of the same name, so starting twice never duplicates them, and an edited email stays edited),
then the workflow itself as a draft: nothing runs until the marketer has read it and activates
it. Every email is checked by the mail core's own validation before it is saved, so a template
can never hold an email the editor would refuse.

A template's steps name their emails by a short key (`"email": "welcome"`); `create_from` swaps
each for the saved template's id. Moments that depend on the site (a webinar's date, the sales
team's address) are worked out when the workflow is created, from `Context`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from engine.contacts import service as contacts
from engine.contacts.timezones import site_zone
from engine.content.service import site_settings
from engine.db import db, utcnow, write
from engine.mail import rendering
from engine.mail.models import EmailTemplate
from plugins.workflows import service
from plugins.workflows.definition import WorkflowError
from plugins.workflows.models import Workflow

SALES_QUALIFIED = "sales_qualified"
HI = '{{ contact.first_name | default("there") }}'
DAY = 24 * 60


@dataclass(frozen=True)
class Email:
    """One email of a template: `label` ends its template's name ("Welcome series — 1. …")."""

    label: str
    subject: str
    preheader: str
    body: str


@dataclass
class Plan:
    """What a template builds: the trigger, the rules, the steps and the emails they send."""

    trigger: dict[str, Any]
    steps: dict[str, Any]
    emails: dict[str, Email]
    rules: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (label, type)


@dataclass(frozen=True)
class Context:
    """What a template may depend on: the site's today, its zone and the sales address."""

    today: date
    zone: str
    sales: str


@dataclass(frozen=True)
class Template:
    slug: str
    title: str
    description: str
    build: Callable[[Context], Plan]


def _email(key: str, next_: str = "") -> dict[str, Any]:
    return {"kind": "send_email", "email": key, "next": next_}


def _wait(days: float, next_: str) -> dict[str, Any]:
    return {"kind": "wait", "mode": "duration", "minutes": int(days * DAY), "next": next_}


def _when(condition: dict[str, Any], yes: str, no: str, note: str = "") -> dict[str, Any]:
    step = {"kind": "if", "condition": condition, "yes": yes, "no": no}
    return step | ({"note": note} if note else {})


def _any(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"match": "any", "conditions": list(parts)}


def _opened(step: str = "") -> dict[str, Any]:
    return {"kind": "wf_email", "action": "opened", "step": step}


def _clicked(step: str = "") -> dict[str, Any]:
    return {"kind": "wf_email", "action": "clicked", "step": step}


# --- the six templates ---------------------------------------------------------------------------

def welcome(ctx: Context) -> Plan:
    """Day 0 welcome; day 2 tips to those who opened or clicked it, another subject to those
    who did not; day 7 the best of the site."""
    return Plan(
        trigger={"kind": "list_joined", "list": "newsletter"},
        steps={"start": "welcome", "steps": {
            "welcome": _email("welcome", "wait-2-days"),
            "wait-2-days": _wait(2, "engaged"),
            "engaged": _when(_any(_opened("welcome"), _clicked("welcome")), "tips", "nudge",
                             "Opened or clicked the welcome email?"),
            "tips": _email("tips", "wait-5-days"),
            "nudge": _email("nudge", "wait-5-days"),
            "wait-5-days": _wait(5, "best-of"),
            "best-of": _email("best_of"),
        }},
        emails={
            "welcome": Email(
                "Welcome", "Welcome to {{ site.name }}",
                "What to expect from us, and one thing to read first.",
                f"Hi {HI},\n\nThanks for joining the {{{{ site.name }}}} newsletter. Every "
                "other week you will get one short email with one practical idea you can use "
                "the same day. No fluff, and you can leave with one click.\n\n"
                "To start, here is what our readers open most: "
                "[the articles on our blog]({{ site.url }}/blog).\n\n"
                "One question: what is the one marketing job you never find time for? Reply "
                "and tell us — we read every answer, and it shapes what we write.\n\n"
                "Talk soon,  \nThe {{ site.name }} team"),
            "tips": Email(
                "Three quick tips", "Three things you can do this week",
                "Each takes under an hour.",
                f"Hi {HI},\n\nSince you are here, three small jobs that pay off quickly:\n\n"
                "1. **Ask one question in your welcome email.** Replies tell you what people "
                "want, and teach mailbox providers that your mail is wanted.\n"
                "2. **Put one clear call to action on your busiest page.** One, not three.\n"
                "3. **Look at where last month's customers came from.** Do more of that.\n\n"
                "More like this on [our blog]({{ site.url }}/blog).\n\n"
                "The {{ site.name }} team"),
            "nudge": Email(
                "In case you missed it", "Did our welcome email reach you?",
                "The short version, and the one link worth your time.",
                f"Hi {HI},\n\nOur welcome email may have landed in a busy inbox, so here is the "
                "short version: one useful idea every other week, nothing else.\n\n"
                "If you only read one thing, make it [this week's article]({{ site.url }}/blog)."
                "\n\nTip: drag this email into your main inbox, so the next one does not get "
                "lost.\n\nThe {{ site.name }} team"),
            "best_of": Email(
                "The best of", "Our most useful articles, in one place",
                "Hand-picked from everything we have written.",
                f"Hi {HI},\n\nYou have been with us a week — thank you. Here is where to go "
                "next:\n\n- [The blog]({{ site.url }}/blog): every article, newest first.\n"
                "- [Pricing]({{ site.url }}/pricing): when you would rather we did it with "
                "you.\n\nFrom now on you will hear from us every other week. If that is too "
                "often, [change what you get]({{ preferences_url }}).\n\n"
                "The {{ site.name }} team"),
        })


def _next_thursday(today: date, at_least: int = 14) -> date:
    day = today + timedelta(days=at_least)
    return day + timedelta(days=(3 - day.weekday()) % 7)


def webinar(ctx: Context) -> Plan:
    """Registration confirmed at once; reminders the day before and on the morning; the day
    after, the recording and a next step for those tagged as attendees, "sorry we missed you"
    for the others. The date is a placeholder two weeks or more ahead: the marketer sets it in
    the three waits and the emails."""
    day = _next_thursday(ctx.today)
    when = f"{day:%A} {day.day} {day:%B} {day.year}, 13:00 ({ctx.zone} time)"
    short = f"{day:%A} {day.day} {day:%B}"
    return Plan(
        trigger={"kind": "form_submitted", "form": "webinar"},
        steps={"start": "confirm", "steps": {
            "confirm": _email("confirm", "until-day-before"),
            "until-day-before": {"kind": "wait", "mode": "until_date",
                                 "date": (day - timedelta(days=1)).isoformat(), "hour": 10,
                                 "next": "reminder", "note": "The day before the webinar"},
            "reminder": _email("reminder", "until-the-day"),
            "until-the-day": {"kind": "wait", "mode": "until_date", "date": day.isoformat(),
                              "hour": 9, "next": "today", "note": "The morning of the webinar"},
            "today": _email("today", "until-day-after"),
            "until-day-after": {"kind": "wait", "mode": "until_date",
                                "date": (day + timedelta(days=1)).isoformat(), "hour": 10,
                                "next": "attended", "note": "The day after the webinar"},
            "attended": _when({"match": "all", "conditions": [
                {"kind": "tag", "tag": "attended-webinar", "op": "has"}]},
                "recording", "missed", "Tagged attended-webinar? (tag attendees after it)"),
            "recording": _email("recording"),
            "missed": _email("missed"),
        }},
        emails={
            "confirm": Email(
                "You are registered", "You are registered: see you on " + short,
                "Add it to your calendar now.",
                f"Hi {HI},\n\nYour seat is saved. Here are the details:\n\n"
                f"**When:** {when}  \n**Where:** online — the link comes in your reminder "
                "email.  \n**How long:** 45 minutes, with questions at the end.\n\n"
                "Add it to your calendar now so it does not slip. Can't make it? Stay "
                "registered: everyone gets the recording.\n\n"
                "Got a question you want answered live? Just reply to this email.\n\n"
                "See you there,  \nThe {{ site.name }} team"),
            "reminder": Email(
                "Reminder: tomorrow", "Tomorrow: our live webinar",
                "13:00, online, 45 minutes.",
                f"Hi {HI},\n\nA quick reminder: the webinar is tomorrow, {when}.\n\n"
                "We will send the link to join on the morning. Bring a question — the best "
                "part is the Q&A at the end.\n\nThe {{ site.name }} team"),
            "today": Email(
                "Reminder: today", "Today at 13:00: your link to join",
                "We start on time; the doors open 5 minutes early.",
                f"Hi {HI},\n\nIt is today at 13:00 ({ctx.zone} time).\n\n"
                "[Join the webinar]({{ site.url }}/webinar)\n\n"
                "Join a few minutes early to check your sound. See you soon!\n\n"
                "The {{ site.name }} team"),
            "recording": Email(
                "Thanks for coming", "Thanks for joining: the recording and your next step",
                "Watch it again, share it, and take the next step.",
                f"Hi {HI},\n\nThank you for joining us yesterday — and for the questions.\n\n"
                "[Watch the recording]({{ site.url }}/webinar) (share it with your team, "
                "too).\n\nWant to put it into practice? [Book a free 20-minute call]"
                "({{ site.url }}/pricing) and we will look at your setup with you.\n\n"
                "The {{ site.name }} team"),
            "missed": Email(
                "Sorry we missed you", "Sorry we missed you — here is the recording",
                "45 minutes, watch it when it suits you.",
                f"Hi {HI},\n\nWe missed you yesterday — no problem, life happens.\n\n"
                "[Watch the recording]({{ site.url }}/webinar) whenever it suits you. The "
                "questions from the audience start at minute 30.\n\n"
                "If something was not covered, reply to this email and we will answer it.\n\n"
                "The {{ site.name }} team"),
        })


def abandoned_cart(ctx: Context) -> Plan:
    """A reminder an hour after the cart was left, another a day later; the goal "Purchased"
    at the end pulls anyone who buys at any point straight to it, so no reminder follows a
    purchase. Three days after the last reminder without a purchase, the contact leaves."""
    purchased = {"match": "all", "conditions": [{"kind": "wf_event", "type": "purchase"}]}
    return Plan(
        trigger={"kind": "event", "type": "cart_abandoned"},
        rules={"enrol": "always"},
        steps={"start": "wait-1-hour", "steps": {
            "wait-1-hour": _wait(1 / 24, "first-reminder"),
            "first-reminder": _email("first", "wait-23-hours"),
            "wait-23-hours": _wait(23 / 24, "second-reminder"),
            "second-reminder": _email("second", "wait-3-days"),
            "wait-3-days": _wait(3, "purchased"),
            "purchased": {"kind": "goal", "name": "Purchased", "condition": purchased,
                          "unmet": "exit",
                          "note": "A purchase at any point jumps here: converted, done."},
        }},
        emails={
            "first": Email(
                "1. Still in your cart", "You left something in your cart",
                "It is saved for you — pick up where you left off.",
                f"Hi {HI},\n\nYou were almost done: your cart is saved, just as you left it.\n\n"
                "[Return to your cart]({{ site.url }})\n\n"
                "Questions about sizes, delivery or payment? Reply to this email and a real "
                "person will answer.\n\nThe {{ site.name }} team"),
            "second": Email(
                "2. Last reminder", "Still thinking it over?",
                "Your cart is waiting, but not for ever.",
                f"Hi {HI},\n\nJust checking in: the items in your cart are still there, but we "
                "cannot hold them for ever.\n\n"
                "[Complete your order]({{ site.url }})\n\n"
                "If something stopped you — the price, delivery, a question — tell us by "
                "replying. We read every answer.\n\nThe {{ site.name }} team"),
        })


def birthday(ctx: Context) -> Plan:
    """On the contact's birthday (the `birthday` date field), at 9:00 on their clocks, every
    year."""
    return Plan(
        trigger={"kind": "date_field", "field": "birthday", "offset_days": 0, "hour": 9,
                 "yearly": True},
        rules={"enrol": "always"},
        fields={"birthday": ("Birthday", "date")},
        steps={"start": "greeting", "steps": {"greeting": _email("greeting")}},
        emails={"greeting": Email(
            "Happy birthday", f"Happy birthday, {HI}!", "A little something from all of us.",
            f"Hi {HI},\n\nHappy birthday from everyone at {{{{ site.name }}}}! We hope "
            "today brings you good company and something nice to eat.\n\n"
            "Thanks for being part of our community this year.\n\n"
            "Warm wishes,  \nThe {{ site.name }} team")})


def onboarding(ctx: Context) -> Plan:
    """Five emails over about ten days for new customers: start here; the first win; the
    basics only for those who did not click the first win (the others are past them);
    customers' tips; then feedback from the engaged, an offer of help to the quiet ones."""
    return Plan(
        trigger={"kind": "stage_reached", "stage": "customer"},
        steps={"start": "start-here", "steps": {
            "start-here": _email("start", "wait-2-days"),
            "wait-2-days": _wait(2, "first-win"),
            "first-win": _email("first_win", "wait-2-days-more"),
            "wait-2-days-more": _wait(2, "clicked-first-win"),
            "clicked-first-win": _when(_any(_clicked("first-win")), "tips", "basics",
                                       "Clicked the first-win email? Then skip the basics."),
            "basics": _email("basics", "wait-before-tips"),
            "wait-before-tips": _wait(2, "tips"),
            "tips": _email("tips", "wait-3-days"),
            "wait-3-days": _wait(3, "engaged"),
            "engaged": _when(_any(_opened(), _clicked()), "feedback", "help",
                             "Opened or clicked any onboarding email?"),
            "feedback": _email("feedback"),
            "help": _email("help"),
        }},
        emails={
            "start": Email(
                "1. Start here", "Welcome aboard — start here",
                "Three steps to get going, ten minutes each.",
                f"Hi {HI},\n\nWelcome, and thank you for choosing {{{{ site.name }}}}.\n\n"
                "Over the next ten days we will send a handful of short emails, each with one "
                "step. Today's is the easiest: **tell us what you want to achieve** by "
                "replying to this email, in one sentence. We use it to help you.\n\n"
                "The {{ site.name }} team"),
            "first_win": Email(
                "2. Your first win", "Your first win in 10 minutes",
                "The one setup step that pays off fastest.",
                f"Hi {HI},\n\nMost customers see their first result after one step: "
                "[follow this 10-minute guide]({{ site.url }}/blog).\n\n"
                "Stuck? Reply and we will walk you through it.\n\nThe {{ site.name }} team"),
            "basics": Email(
                "3. The basics", "The basics, in five minutes",
                "Everything you need, nothing you don't.",
                f"Hi {HI},\n\nIf you have not had a minute yet, here are the basics in a "
                "five-minute read:\n\n1. Where everything is.\n2. The settings worth "
                "changing on day one.\n3. Where to get help.\n\n"
                "[Read the basics]({{ site.url }}/blog)\n\nThe {{ site.name }} team"),
            "tips": Email(
                "4. Customers' tips", "Three tips from customers like you",
                "What the people who get the most out of it do differently.",
                f"Hi {HI},\n\nWe asked our happiest customers what made the difference. "
                "Their top three:\n\n- **A routine:** fifteen minutes, same day every week.\n"
                "- **One number to watch**, not ten.\n- **Asking us early.** Questions are "
                "what we are here for.\n\n[More tips on the blog]({{ site.url }}/blog)\n\n"
                "The {{ site.name }} team"),
            "feedback": Email(
                "5. How is it going", "How is it going so far?",
                "Two minutes, and it really helps us.",
                f"Hi {HI},\n\nYou have been with us for about ten days. How is it going?\n\n"
                "Reply with one word — *great*, *fine* or *stuck* — and we will take it "
                "from there.\n\nThank you,  \nThe {{ site.name }} team"),
            "help": Email(
                "5. Need a hand", "Need a hand getting started?",
                "A free 20-minute call, at a time that suits you.",
                f"Hi {HI},\n\nGetting started can slip down the list — we understand.\n\n"
                "If a hand would help, [book a free 20-minute call]({{ site.url }}/pricing) "
                "and we will set things up with you.\n\nThe {{ site.name }} team"),
        })


def lead_nurture(ctx: Context) -> Plan:
    """Three useful emails over about two weeks to anyone who submits a form; whoever visits
    the pricing page becomes a sales-qualified lead (+20 points, sales notified at once)."""
    pricing = {"match": "all", "conditions": [{"kind": "wf_page", "path": "/pricing*"}]}
    return Plan(
        trigger={"kind": "form_submitted", "form": ""},
        steps={"start": "guide", "steps": {
            "guide": _email("guide", "wait-3-days"),
            "wait-3-days": _wait(3, "case-study"),
            "case-study": _email("case_study", "wait-4-days"),
            "wait-4-days": _wait(4, "visited-pricing"),
            "visited-pricing": _when(pricing, "to-sales", "questions",
                                     "Visited the pricing page since entering?"),
            "questions": _email("questions", "wait-7-days"),
            "wait-7-days": _wait(7, "visited-pricing-later"),
            "visited-pricing-later": _when(pricing, "to-sales", "", "Pricing page since?"),
            "to-sales": {"kind": "set_stage", "stage": SALES_QUALIFIED, "next": "tell-sales"},
            "tell-sales": {"kind": "notify", "to": ctx.sales,
                           "subject": "Sales-qualified lead: visited the pricing page",
                           "message": "This contact read our nurture emails and then looked "
                                      "at the pricing page. Get in touch within a day.",
                           "next": "score"},
            "score": {"kind": "adjust_score", "points": 20},
        }},
        emails={
            "guide": Email(
                "1. The guide", "The guide you asked for, and how to use it",
                "Start with page 3: it is the part people skip and regret.",
                f"Hi {HI},\n\nThanks for getting in touch. Here is how to get the most from "
                "what you downloaded: start with the checklist, pick **one** thing, and do "
                "it this week.\n\nMore practical guides: [our blog]({{ site.url }}/blog).\n\n"
                "The {{ site.name }} team"),
            "case_study": Email(
                "2. A case study", "How a two-person business doubled its enquiries",
                "No big budget, no agency: what they did, step by step.",
                f"Hi {HI},\n\nA short story: a two-person business, no marketing budget, "
                "twice the enquiries in three months. What they did:\n\n1. One landing page "
                "per offer.\n2. A welcome series that asks a question.\n3. A weekly "
                "half-hour looking at what worked.\n\n"
                "[Read the full story]({{ site.url }}/blog)\n\nThe {{ site.name }} team"),
            "questions": Email(
                "3. Any questions", "Any questions we can answer?",
                "A real person reads every reply.",
                f"Hi {HI},\n\nOver the past week we have sent you a guide and a case study. "
                "Is there something you would like to know?\n\n"
                "Reply to this email, or see [what working with us costs]"
                "({{ site.url }}/pricing).\n\nThe {{ site.name }} team"),
        })


TEMPLATES: dict[str, Template] = {t.slug: t for t in (
    Template("welcome", "Welcome series",
             "Three emails over a week for new newsletter subscribers: a welcome, then tips "
             "for those who opened or clicked it and another subject for those who did "
             "not, then the best of the site.", welcome),
    Template("webinar", "Webinar invitation",
             "For webinar registrations: a confirmation, reminders the day before and on the "
             "morning, then the recording for attendees (tagged attended-webinar) or a "
             "“sorry we missed you” for the others. Set the date in the waits and emails.",
             webinar),
    Template("abandoned_cart", "Abandoned cart",
             "Reminders an hour and a day after a cart is left (the cart_abandoned event); "
             "a purchase at any point ends it as converted, so no reminder follows it.",
             abandoned_cart),
    Template("birthday", "Birthday greeting",
             "A greeting on each contact's birthday (the birthday date field), at 9:00 on "
             "their clocks, every year.", birthday),
    Template("onboarding", "Customer onboarding",
             "Five short emails over ten days for new customers, skipping the basics for "
             "those who clicked ahead, ending with feedback or an offer of help.", onboarding),
    Template("lead_nurture", "Lead nurture to sales",
             "Useful emails over two weeks after any form; a visit to the pricing page makes "
             "the contact a sales-qualified lead, adds 20 points and notifies sales.",
             lead_nurture),
)}


# --- creating ----------------------------------------------------------------------------------

def context() -> Context:
    """The site's today and zone, and sales@ at the site's own domain."""
    zone = site_zone()
    address = str(site_settings().get("email") or "")
    domain = address.rpartition("@")[2].strip() if "@" in address else ""
    return Context(today=utcnow().astimezone(zone).date(), zone=str(zone),
                   sales=f"sales@{domain}" if domain else "sales@example.com")


def email_name(template: Template, email: Email) -> str:
    return f"{template.title} — {email.label}"[:150]


def _free_name(wanted: str) -> str:
    name, number = wanted, 1
    while service.by_name(name) is not None:
        number += 1
        name = f"{wanted} ({number})"
    return name


def _save_email(name: str, email: Email, by: str) -> int:
    """The id of the email template of this name: the existing one, or this email, checked."""
    found = db.session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == name))
    if found is not None:
        return found
    problems = rendering.validate(subject=email.subject, preheader=email.preheader,
                                  body=email.body, format="markdown")
    if problems:
        raise WorkflowError(f"The email “{name}”: {problems[0].field} {problems[0]}")
    with write() as session:
        row = EmailTemplate(name=name, subject=email.subject, preheader=email.preheader,
                            format="markdown", body=email.body, kind="marketing",
                            updated_by=by)
        session.add(row)
        session.flush()
        return row.id


def _define_fields(plan: Plan) -> None:
    """Date fields a trigger needs (the birthday), defined when the site has none of that
    key; one that exists is left as it is."""
    missing = {k: v for k, v in plan.fields.items() if k not in contacts.custom_fields()}
    if missing:
        with write():
            for key, (label, type_) in missing.items():
                contacts.define_field(key, label, type=type_)


def create_from(slug: str, name: str = "", by: str = "") -> Workflow:
    """A draft workflow from the library (with the email templates it sends); the marketer
    reads it, edits it and activates it. A name in use gets " (2)", " (3)"…"""
    template = TEMPLATES.get(slug)
    if template is None:
        raise WorkflowError(f"No workflow template “{slug}” (there are: "
                            f"{', '.join(TEMPLATES)}).")
    plan = template.build(context())
    _define_fields(plan)
    ids = {key: _save_email(email_name(template, email), email, by)
           for key, email in plan.emails.items()}
    steps = {key: ({k: v for k, v in step.items() if k != "email"}
                   | {"template_id": ids[step["email"]]} if "email" in step else dict(step))
             for key, step in plan.steps["steps"].items()}
    return service.create(_free_name(" ".join(name.split()) or template.title),
                          trigger=plan.trigger, rules=plan.rules,
                          steps={"start": plan.steps["start"], "steps": steps},
                          description=template.description, template=slug, by=by)
