"""Site settings from `content/site.yml` (title, base URL, footer fields of a Chinese government site)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .datafile import read_yaml
from .errors import fail


@dataclass(frozen=True)
class SiteConfig:
    title: str = "法治政府建设年度报告"
    subtitle: str = "各地法治政府建设年度报告汇编与比较"
    base_url: str = "http://localhost:8000/"
    organiser: str = ""  # 主办单位
    icp: str = ""  # ICP备案号
    police_record: str = ""  # 公安备案号
    site_code: str = ""  # 网站标识码
    contact: str = ""
    topic_page_size: int = 400  # sections per topic page (a national topic gathers tens of thousands)
    chart_bars: int = 40  # bars in an indicator's chart: its largest values (the table lists them all)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_path(self) -> str:
        """`/fzbg/` for https://example.org/fzbg/ (the sub-path the site is served under)."""
        path = urlsplit(self.base_url).path or "/"
        return path if path.endswith("/") else path + "/"

    def absolute(self, site_path: str) -> str:
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return base + site_path.lstrip("/")


_FIELDS = {"title", "subtitle", "base_url", "organiser", "icp", "police_record", "site_code", "contact",
           "topic_page_size", "chart_bars"}
_NUMBERS = {"topic_page_size", "chart_bars"}


def load_config(content_dir: Path, base_url: str | None = None) -> SiteConfig:
    path = content_dir / "site.yml"
    data: dict = {}
    if path.exists():
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise fail(str(path), 1, "site.yml must be a mapping of settings", "write `title: …` lines")
        unknown = set(data) - _FIELDS
        if unknown:
            raise fail(str(path), 1, f"unknown setting(s): {', '.join(sorted(unknown))}",
                       f"use only {', '.join(sorted(_FIELDS))}")
    settings: dict = {k: str(v) for k, v in data.items() if v is not None and k not in _NUMBERS}
    for key in _NUMBERS & set(data):
        value = data[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(str(path), 1, f"{key} must be a whole number of at least 1, not {value!r}",
                       f"write e.g. `{key}: {getattr(SiteConfig, key)}`")
        settings[key] = value
    if base_url:
        settings["base_url"] = base_url
    parts = urlsplit(settings.get("base_url", SiteConfig.base_url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail(str(path), 1, f"base_url {settings.get('base_url')!r} is not an http(s) URL",
                   "write e.g. https://example.org/fzbg/")
    return SiteConfig(**settings)
