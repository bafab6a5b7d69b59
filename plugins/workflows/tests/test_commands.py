"""`magnet workflows …`: templates, create-from, activate/pause/resume, list, show and enrol,
with what each prints and what it stores."""
from __future__ import annotations

from plugins.workflows.tests.support import enrolment, get_workflow, path, person, record, site


def run(app, *args):
    return app.test_cli_runner().invoke(args=["workflows", *args])


def test_templates_create_from_and_switching(app):
    out = run(app, "templates").output.splitlines()
    assert [line.split()[0] for line in out] == ["welcome", "webinar", "abandoned_cart",
                                                 "birthday", "onboarding", "lead_nurture"]
    assert out[0].startswith("welcome         Welcome series: Three emails over a week")
    assert "No workflows yet" in run(app, "list").output
    made = run(app, "create-from", "abandoned_cart", "--name", "Carts")
    assert made.exit_code == 0, made.output
    assert made.output.startswith("Created “Carts” as a draft with 6 steps.")
    assert 'magnet workflows activate "Carts"' in made.output
    assert run(app, "create-from", "abandoned_cart", "--name", "Carts").output.startswith(
        "Created “Carts (2)”")
    wrong = run(app, "create-from", "nope")
    assert wrong.exit_code == 1 and "No workflow template “nope”" in wrong.output
    assert run(app, "resume", "Carts").output == "Error: “Carts” is draft, not paused.\n"
    assert run(app, "activate", "Carts").output == "“Carts” is active.\n"
    again = run(app, "activate", "Carts")
    assert (again.exit_code, again.output) == (1, "Error: “Carts” is active already.\n")
    assert run(app, "pause", "Carts").output == "“Carts” is paused.\n"
    assert "resume it instead" in run(app, "activate", "Carts").output
    assert run(app, "resume", "Carts").output == "“Carts” is active.\n"
    missing = run(app, "pause", "Nope")
    assert missing.exit_code == 1 and "No workflow named 'Nope'" in missing.output
    listed = run(app, "list").output.splitlines()
    assert listed == [
        "Carts      active        0 active      0 completed  when a contact the event "
        "cart_abandoned happens",
        "Carts (2)  draft         0 active      0 completed  when a contact the event "
        "cart_abandoned happens"]


def test_enrol_and_show_with_counts(make_app, smtp_server):
    app = site(make_app, smtp_server)
    assert run(app, "create-from", "lead_nurture").exit_code == 0
    ann = person(app, "ann@example.com", first_name="Ann")
    person(app, "bob@example.com")
    inactive = run(app, "enrol", "Lead nurture to sales", "--email", "ann@example.com")
    assert inactive.exit_code == 1 and "is not active: activate it" in inactive.output
    run(app, "activate", "Lead nurture to sales")
    done = run(app, "enrol", "Lead nurture to sales", "--email", " Ann@Example.com ")
    assert (done.exit_code, done.output) == (
        0, "Enrolled Ann@Example.com in “Lead nurture to sales”.\n")
    flow = enrolment(app, get_id(app, "Lead nurture to sales"), ann)
    assert (flow.status, flow.reason) == ("active", "enrolled by command line")
    assert "is in “Lead nurture to sales” already" in run(
        app, "enrol", "Lead nurture to sales", "--email", "ann@example.com").output
    unknown = run(app, "enrol", "Lead nurture to sales", "--email", "cy@example.com")
    assert unknown.exit_code == 1
    assert "No contact with the address 'cy@example.com'." in unknown.output
    bad = run(app, "enrol", "Lead nurture to sales", "--email", "not-an-address")
    assert bad.exit_code == 1 and "is not an email address" in bad.output
    record(app, "form_submitted", person(app, "bob@example.com"), form="ebook")
    out = run(app, "show", "Lead nurture to sales").output.splitlines()
    assert out[:2] == ["Lead nurture to sales (active, version 1)",
                       out[1]] and out[1].startswith("Useful emails over two weeks")
    assert out[2:6] == ["Starts when a contact submits any form.",
                        "Enrols a contact once, ever.",
                        "Leaves on unsubscribing.",
                        "Contacts: 2 in it, 0 completed, 0 exited, 0 converted."]
    assert out[6] == "Steps:"
    steps = [line.split()[0] for line in out[7:]]
    assert steps == ["guide", "wait-3-days", "case-study", "wait-4-days", "visited-pricing",
                     "to-sales", "tell-sales", "score", "questions", "wait-7-days",
                     "visited-pricing-later"]
    assert out[7].endswith("send “The guide you asked for, and how to use it” (Lead nurture "
                           "to sales — 1. The guide) → wait-3-days  [0 here, 2 passed]")
    assert out[8].endswith("wait 3 days → case-study  [2 here, 0 passed]")
    assert "if visited /pricing* → yes: to-sales, no: questions" in out[11]
    assert out[13].endswith("notify sales@example.com: “Sales-qualified lead: visited the "
                            "pricing page” → score  [0 here, 0 passed]")
    assert out[14].endswith("adjust the score +20 → end  [0 here, 0 passed]")
    assert path(app, get_id(app, "Lead nurture to sales"), ann) == [("guide", "email queued")]


def get_id(app, name):
    from plugins.workflows import service
    with app.app_context():
        return service.by_name(name).id


def test_show_describes_date_triggers_and_refuses_an_unknown_name(app):
    run(app, "create-from", "birthday")
    out = run(app, "show", "Birthday greeting").output.splitlines()
    assert out[0] == "Birthday greeting (draft, never activated)"
    assert out[2] == ("Starts when a contact the date in birthday comes round (on the day, at "
                      "09:00, every year).")
    assert out[3] == "Enrols a contact every time (never twice at once)."
    assert out[-1].startswith("  greeting  send “Happy birthday, ")
    assert out[-1].endswith("→ end  [0 here, 0 passed]")
    assert get_workflow(app, get_id(app, "Birthday greeting")).template == "birthday"
    missing = run(app, "show", "Nope")
    assert missing.exit_code == 1 and "No workflow named 'Nope'" in missing.output
