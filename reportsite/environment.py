"""The Jinja environment the pages are rendered in: Jinja's own, with two of its per-value costs taken out.
The pages' bytes are exactly those of a plain Environment (tests/test_environment.py renders every template
of the sample site both ways).

- A value written to a page is autoescaped as a plain string: escape() makes a Markup object of each one,
  a str subclass whose construction copies the string, only for the page to join it. (A value in an
  expression is untouched: `~`, filters, macros and `set` blocks still give Markup where Jinja does.)
- A template's call of a plain Python function (url(), excerpt_of(), ...) goes straight to the function:
  Context.call first looks for pass_context and the like on the function and on its __call__.

Together, 1.2 million calls and 4.7 million written values at 10,000 reports (bench/README.md).
"""

from __future__ import annotations

from types import FunctionType
from typing import Any

from jinja2 import Environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from markupsafe import escape

try:
    from markupsafe import _escape_inner as _escaped_str  # markupsafe 3: escape() without its Markup
except ImportError:  # pragma: no cover - markupsafe 2: escape() itself
    _escaped_str = escape

_STOPPED = "value was undefined because a callable raised a StopIteration exception"  # Context.call's


def escaped_output(value: Any) -> str:
    """What escape(value) holds, as a plain string when the value is not markup already."""
    if type(value) is str:
        return _escaped_str(value)
    html = getattr(value, "__html__", None)
    if html is not None:
        return html()
    return _escaped_str(str(value))


class _OutputCodeGenerator(CodeGenerator):
    def _output_child_pre(self, node: Any, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile and finalize.src is None:
            self.write("environment.escaped_output(")
        else:
            super()._output_child_pre(node, frame, finalize)


class _DirectContext(Context):
    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Context.call's names
        if type(__obj) is not FunctionType or "jinja_pass_arg" in __obj.__dict__:
            return super().call(__obj, *args, **kwargs)
        kwargs.pop("_block_vars", None)
        kwargs.pop("_loop_vars", None)
        try:
            return __obj(*args, **kwargs)
        except StopIteration:
            return __self.environment.undefined(_STOPPED)


class SiteEnvironment(Environment):
    code_generator_class = _OutputCodeGenerator
    context_class = _DirectContext
    escaped_output = staticmethod(escaped_output)
