"""Issue 12: links in replies opened in the browser with one click (a model invented social-media
URLs in testing). Now a link asks first, showing the full address, and opens only on "Open"."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication

from memdesk.ui import links
from memdesk.ui.transcript import Transcript

INVENTED = "https://social.example.com/u/memdesk-user-4821"


class Browser(QObject):
    """Stands in for the system browser: Qt hands it every https/mailto URL it is asked to open."""

    def __init__(self):
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


@pytest.fixture
def browser():
    handler = Browser()
    for scheme in ("https", "http", "mailto", "file"):
        QDesktopServices.setUrlHandler(scheme, handler, "open")
    yield handler
    for scheme in ("https", "http", "mailto", "file"):
        QDesktopServices.unsetUrlHandler(scheme)


@pytest.fixture
def answer(monkeypatch):
    """The real confirmation; each time it opens, what it says is kept and the chosen button clicked."""
    seen: list[links.LinkConfirmation] = []
    choice = {"button": "cancel"}

    class Choosing(links.LinkConfirmation):
        def exec(self):
            seen.append((self.text(), self.informativeText(), self.open_button is not None))
            buttons = {"open": self.open_button, "copy": self.copy_button, "cancel": self.cancel_button}
            button = buttons[choice["button"]]
            QTimer.singleShot(0, button.click)
            return super().exec()

    monkeypatch.setattr(links, "LinkConfirmation", Choosing)
    return choice, seen


@pytest.fixture
def reply(qtbot):
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.show()
    return transcript.add_message("assistant", f"Follow me on [my profile]({INVENTED}).")


def click_link(bubble, url: str = INVENTED) -> None:
    bubble.body.linkActivated.emit(url)  # what QLabel emits when the person clicks the link


def test_a_click_asks_first_and_shows_the_whole_address(reply, browser, answer):
    choice, seen = answer
    assert not reply.body.openExternalLinks()
    click_link(reply)
    assert browser.opened == []
    [(question, detail, offers_open)] = seen
    assert INVENTED in detail and "make up" in detail and offers_open
    choice["button"] = "open"
    click_link(reply)
    assert browser.opened == [INVENTED]


def test_copy_address_copies_without_opening(reply, browser, answer):
    choice, _ = answer
    choice["button"] = "copy"
    click_link(reply)
    assert browser.opened == [] and QGuiApplication.clipboard().text() == INVENTED


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "smb://server/share"])
def test_only_web_and_mail_links_can_be_opened(reply, browser, answer, url):
    choice, seen = answer
    choice["button"] = "cancel"
    click_link(reply, url)
    assert seen[-1][2] is False and url in seen[-1][1]
    assert browser.opened == []
