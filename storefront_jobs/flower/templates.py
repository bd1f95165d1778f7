"""Templates of the Dead letters pages, and the navigation entry that leads to them.

One Tornado template loader serves Flower's templates and ours, so that ours
can ``{% extends "base.html" %}`` (Flower's page frame, its CSS and scripts).
Flower's ``navbar.html`` is served with one more item, "Dead letters", put
at the end of its list of primary links: the anchor is the list's class,
``app-nav navbar-nav``. A Flower whose navigation bar has no such list keeps
its own bar (logged once); the pages still answer at ``/dead-letters``, and
``tests/unit/test_flower_section.py`` fails on such an upgrade.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tornado.template import Loader, Template

logger = logging.getLogger(__name__)

OWN_DIR = Path(__file__).parent / "templates"
#: Our template names start with this, so they can never shadow one of Flower's.
OWN_PREFIX = "dlq_"
NAVBAR = "navbar.html"
NAV_LIST = 'class="app-nav navbar-nav"'
NAV_ITEM = """  <li class="nav-item">
          <a class="nav-link{% if active_tab == 'dead-letters' %} active{% end %}"
            href="{{ reverse_url('dead-letters') }}"
            {% if active_tab == 'dead-letters' %}aria-current="page"{% end %}>Dead letters</a>
        </li>
      """


def with_nav_item(navbar: str) -> str | None:
    """Flower's navbar source with our entry last in its primary list; None if there is no such list."""
    start = navbar.find(NAV_LIST)
    end = navbar.find("</ul>", start) if start >= 0 else -1
    if end < 0:
        return None
    return navbar[:end] + NAV_ITEM + navbar[end:]


class FlowerTemplates(Loader):
    """Flower's template directory, plus ours (``dlq_*.html``) and the extended navbar."""

    def __init__(self, flower_dir: str) -> None:
        super().__init__(flower_dir)
        self._own: dict[str, Template] = {}
        self._own_lock = threading.RLock()

    def reset(self) -> None:
        super().reset()
        with self._own_lock:
            self._own.clear()

    def load(self, name: str, parent_path: str | None = None) -> Template:
        name = self.resolve_path(name, parent_path=parent_path)
        if name != NAVBAR and not name.startswith(OWN_PREFIX):
            return super().load(name, parent_path)
        with self._own_lock:
            if name not in self._own:
                self._own[name] = Template(self._source(name), name=name, loader=self)
            return self._own[name]

    def _source(self, name: str) -> str:
        if name.startswith(OWN_PREFIX):
            return (OWN_DIR / name).read_text(encoding="utf-8")
        flower_navbar = (Path(self.root) / NAVBAR).read_text(encoding="utf-8")
        extended = with_nav_item(flower_navbar)
        if extended is None:
            logger.warning("Flower's navbar.html has no %s list: no 'Dead letters' entry in it", NAV_LIST)
            return flower_navbar
        return extended
