"""Signing in and out of the household page in a real browser."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_invite_link_signs_in_and_lands_on_the_diary(web_server, browser_factory, screenshot):
    member = web_server.add_member("Ada")
    page = browser_factory().new_page()
    page.goto(member.invite_link)
    page.wait_for_url("**/#/diary")
    page.locator("#main[data-view=diary][data-ready]").wait_for()
    assert page.locator("#sign-out").is_visible()
    assert "invite" not in page.url, "the spent invite code stays out of the address bar"
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "echodiary_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    screenshot(page, "diary-after-invite")


def test_an_invite_link_works_once(web_server, browser_factory):
    member = web_server.add_member("Bea")
    first = browser_factory().new_page()
    first.goto(member.invite_link)
    first.wait_for_url("**/#/diary")
    second = browser_factory().new_page()
    second.goto(member.invite_link)
    second.locator("#signin-error").get_by_text("already used").wait_for()
    assert second.locator("#sign-out").is_hidden()


def test_token_sign_in_then_sign_out_forgets_the_session(web_server, browser_factory, screenshot):
    member = web_server.add_member("Cy")
    page = browser_factory().new_page()
    page.goto(f"{web_server.url}/")
    page.wait_for_url("**/#/signin**")
    screenshot(page, "signin")
    page.fill("#signin-token", member.token)
    page.click("form button[type=submit]")
    page.wait_for_url("**/#/diary")
    page.click("#sign-out")
    page.wait_for_url("**/#/signin**")
    assert not [c for c in page.context.cookies() if c["name"] == "echodiary_session"]
    page.goto(f"{web_server.url}/#/voices")
    page.wait_for_url("**/#/signin?next=voices")


def test_a_wrong_token_says_so(web_server, browser_factory):
    page = browser_factory().new_page()
    page.goto(f"{web_server.url}/#/signin")
    page.fill("#signin-token", "not-a-token")
    page.click("form button[type=submit]")
    page.locator("#signin-error").get_by_text("invalid API token").wait_for()
