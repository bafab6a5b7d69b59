"""The public archive: only sent campaigns an editor published, as the email read by nobody in
particular - no names, no addresses, no tracking, no working unsubscribe link."""
from __future__ import annotations

from plugins.newsletters import service
from plugins.newsletters.tests.support import campaign, people, send_all, site, template

BODY = ("Hello {{ contact.first_name | default('there') }} ({{ contact.last_name }})! "
        "[See the offer](https://shop.example.com/offer)")


def test_only_sent_public_campaigns_and_nothing_personal(make_app, smtp_server):
    app = site(make_app, smtp_server)
    people(app, 2, last_name="Secretname")
    body = template(app, body=BODY)
    shown = campaign(app, body, name="Shown", subject="Our {{ contact.first_name }} news",
                     public=True)
    private = campaign(app, body, name="Private", subject="Private news")
    draft = campaign(app, body, name="Draft", subject="Draft news", public=True)
    with app.app_context():
        service.schedule(shown)
        service.schedule(private)
    send_all(app)
    assert len(smtp_server.messages) == 4
    client = app.test_client()

    listing = client.get("/newsletters/")
    html = listing.get_data(as_text=True)
    assert listing.status_code == 200 and listing.headers["Cache-Control"] == "public, max-age=300"
    assert f'href="/newsletters/{shown}">Our news</a>' in html and "<h1>Newsletters</h1>" in html
    assert "Private news" not in html and "Draft news" not in html
    assert 'class="site-header"' in html  # in the site's theme

    page = client.get(f"/newsletters/{shown}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "public, max-age=300"
    assert "set-cookie" not in {k.lower() for k in page.headers.keys()}
    assert "Hello there ()!" in html and "<title>Our news · " in html
    assert 'href="https://shop.example.com/offer"' in html and "All newsletters" in html
    for personal in ("P0", "P1", "p0@example.org", "p1@example.org", "Secretname"):
        assert personal not in html
    for tracking in ("/email/c/", "/email/o/", "utm_", "/email/unsubscribe", "magnet-hp"):
        assert tracking not in html
    assert "Unsubscribe" not in html and "You receive this email" not in html
    assert "style-src 'self' 'sha256-" in page.headers["Content-Security-Policy"]

    for missing in (private, draft, 9999):
        assert client.get(f"/newsletters/{missing}").status_code == 404
    assert client.get("/newsletters/nope").status_code == 404


def test_a_web_version_can_be_taken_down_after_the_send(make_app, smtp_server):
    from tests.admin_helpers import signed_in, token_for
    app = site(make_app, smtp_server)
    people(app, 1)
    shown = campaign(app, template(app), name="Shown", public=True)
    with app.app_context():
        service.schedule(shown)
    send_all(app)
    assert app.test_client().get(f"/newsletters/{shown}").status_code == 200
    viewer, editor = signed_in(app, "viewer"), signed_in(app, "editor")
    token = token_for(viewer, f"/admin/campaigns/{shown}")
    assert viewer.post(f"/admin/campaigns/{shown}/web-version",
                       data={"csrf_token": token, "public": "0"}).status_code == 403
    token = token_for(editor, f"/admin/campaigns/{shown}")
    answer = editor.post(f"/admin/campaigns/{shown}/web-version",
                         data={"csrf_token": token, "public": "0"}, follow_redirects=True)
    assert "“Shown” is not in the archive." in answer.get_data(as_text=True)
    assert app.test_client().get(f"/newsletters/{shown}").status_code == 404
    assert "Publish it" in answer.get_data(as_text=True)
