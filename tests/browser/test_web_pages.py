"""Pages of the household web page: admin only for admins, language switch, voices, phone layout,
and a screenshot of each page."""

from __future__ import annotations

import pytest
from jobs_fixtures import audio_bytes

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def household(web_server, tmp_path_factory):
    admin = web_server.add_member("Mum", admin=True)
    kid = web_server.add_member("Kid")
    clip = tmp_path_factory.mktemp("clip") / "kid.wav"
    clip.write_bytes(audio_bytes(4.0))
    made = web_server.cli("voices", "add", str(clip), "-t", "今天天气很好。", "-l", "zh", "--name", "Kid's voice",
                          token=kid.token)
    assert made.returncode == 0, made.stderr
    return admin, kid


def open_as(browser_factory, web_server, member, route, **context):
    page = browser_factory(**context).new_page()
    page.goto(member.invite_link if member.invite_link else web_server.url)
    page.wait_for_url("**/#/diary")
    page.goto(f"{web_server.url}/#/{route}")
    page.locator(f"#main[data-view={route.split('/')[0].split('?')[0]}][data-ready]").wait_for()
    return page


def fresh_invite(web_server, member):
    return type(member)(member.name, member.token, web_server.invite(member.name), member.admin)


def test_the_admin_page_is_for_admins_only(web_server, household, browser_factory, screenshot):
    admin, kid = household
    page = open_as(browser_factory, web_server, fresh_invite(web_server, admin), "admin")
    assert page.locator("#nav a[href='#/admin']").is_visible()
    names = page.locator("#members tbody tr td:first-child").all_inner_texts()
    assert {"Mum", "Kid"} <= set(names)
    page.locator("#health").get_by_text("embedded", exact=True).wait_for()
    assert "embedded mode" in page.locator("#workers").inner_text()  # no worker processes to list here
    assert not page.locator("#main").inner_text().rstrip().endswith("null")  # no Flower link, and no stray text
    page.locator("#members tr", has_text="Kid").locator("button.invite").click()
    link = page.locator("#invite-link").input_value()
    assert link.startswith(web_server.url + "/#invite=")
    screenshot(page, "admin")
    kid_page = open_as(browser_factory, web_server, fresh_invite(web_server, kid), "admin")
    assert kid_page.locator("#nav a[href='#/admin']").count() == 0
    kid_page.locator("#admin-only").wait_for()
    assert kid_page.locator("#members").count() == 0
    # The invite the admin made works in another browser, once.
    other = browser_factory().new_page()
    other.goto(link)
    other.wait_for_url("**/#/diary")


def test_language_switch_is_remembered(web_server, household, browser_factory, screenshot):
    _, kid = household
    page = open_as(browser_factory, web_server, fresh_invite(web_server, kid), "voices")
    assert page.locator("#nav a[href='#/diary']").inner_text() == "Diary"
    page.click("#lang-switch")
    page.locator("#nav a[href='#/diary']", has_text="日记").wait_for()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#main h1").inner_text() == "声音"
    page.reload()
    page.locator("#main[data-view=voices][data-ready]").wait_for()
    assert page.locator("#main h1").inner_text() == "声音"
    screenshot(page, "voices-zh")
    page.click("#lang-switch")
    page.locator("#main h1", has_text="Voices").wait_for()


def test_a_browser_asking_for_chinese_gets_chinese(web_server, household, browser_factory):
    _, kid = household
    page = open_as(browser_factory, web_server, fresh_invite(web_server, kid), "jobs", locale="zh-CN")
    assert page.locator("#main h1").inner_text() == "任务"


def test_voice_details_and_a_delete_that_asks_twice(web_server, household, browser_factory, screenshot):
    _, kid = household
    page = open_as(browser_factory, web_server, fresh_invite(web_server, kid), "voices")
    screenshot(page, "voices")
    page.click("#voice-list a")
    page.locator("#main[data-view=voice][data-ready]").wait_for()
    facts = page.locator("#voice-facts").inner_text()
    assert "ready" in facts and "none (an old one-clip voice)" in facts
    voice_id = page.url.rsplit("/", 1)[1]
    assert page.get_attribute("#voice-takes", "href") == f"#/enroll?voice={voice_id}"
    screenshot(page, "voice")
    page.click("#voice-delete")
    page.locator("#voice-delete-box").get_by_text("cannot be undone").wait_for()
    with web_server.client(kid.token) as api:
        assert api.get(f"/v1/voices/{voice_id}").status_code == 200, "the first click deletes nothing"
    page.click("#voice-delete-confirm")
    page.wait_for_url("**/#/voices")
    page.locator("#main[data-view=voices][data-ready]").wait_for()
    with web_server.client(kid.token) as api:
        assert api.get(f"/v1/voices/{voice_id}").status_code == 404


def test_phone_sized_screens_and_the_keyboard(web_server, household, browser_factory, screenshot):
    admin, _ = household
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True, "has_touch": True}
    page = open_as(browser_factory, web_server, fresh_invite(web_server, admin), "diary", **phone)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
    screenshot(page, "diary-phone")
    # Keyboard: tabbing from the top reaches the navigation and the editor, each with a name.
    page.focus("a.brand")
    focused = []
    for _ in range(16):
        focused.append(page.evaluate("(document.activeElement.getAttribute('aria-label') || "
                                     "document.activeElement.textContent || document.activeElement.id).trim()"))
        page.keyboard.press("Tab")
    assert {"Diary", "Jobs", "Sign out", "entry-text"} <= set(focused)
    assert all(focused), focused
    page.goto(f"{web_server.url}/#/signin")
    page.goto(f"{web_server.url}/#/jobs")
    page.locator("#main[data-view=jobs][data-ready]").wait_for()
    screenshot(page, "jobs-phone")
