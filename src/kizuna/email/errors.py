"""What can be wrong with an email template or its input: each error says where and what to do."""

from __future__ import annotations

import jinja2
from jinja2.sandbox import SecurityError


class EmailTemplateError(jinja2.TemplateError):
    """Something is wrong with an email template or its input; the message says where and what to do."""


class TemplateSourceError(EmailTemplateError):
    """A template file or meta.yml is missing or does not parse."""


class OutsideTemplatesError(TemplateSourceError):
    """A template file, meta.yml or folder is a link leading outside templates/ (a .env, /etc, /proc …)."""


class MissingVariableError(EmailTemplateError):
    """The context lacks a variable the template needs."""

    def __init__(self, message: str, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


class TemplateRenderError(EmailTemplateError):
    """A filter or expression failed on this recipient's values."""


class TemplateLimitError(TemplateRenderError):
    """Rendering one message went past a loop, size or time limit (kizuna.email.limits)."""


class UnsafeTemplateError(EmailTemplateError, SecurityError):
    """The template tried something the sandbox forbids (private attributes, unsafe calls)."""


class InvalidSubjectError(EmailTemplateError):
    """The rendered subject is empty or not a single line (a newline would inject mail headers)."""


class EmptyBodyError(EmailTemplateError):
    """The rendered body has no content of its own."""


class ComplianceError(EmailTemplateError):
    """The rendered email lacks what 特定電子メール法 requires (sender, address, contact, opt-out)."""
