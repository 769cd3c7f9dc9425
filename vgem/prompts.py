"""Prompt templates and the decomposition of a query into prompts (docs/method.md §5).

A query becomes a verb prompt, an object prompt and an action prompt. With
several candidate verbs or objects (free sentences) each candidate is its own
prompt; the grounder keeps, per clip, the one that matches the clip best.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgem.extractors.base import Extraction

PROMPT_ROLES: tuple[str, ...] = ("verb", "object", "action")
PROMPT_MODES: tuple[str, ...] = ("decomposed", "action", "verb", "object")


@dataclass(frozen=True)
class Templates:
    """The authors' templates; every one can be changed by the user."""

    verb: str = "A photo of a person {} something."
    object: str = "A photo of a person using {}."
    action: str = "A photo of a person {}."
    no_verb: str = "A photo of a person doing something."
    no_object: str = "A photo of a person."


@dataclass(frozen=True)
class QueryPrompts:
    """Every prompt text one query needs, candidates in extraction order."""

    query: str
    action: str
    verb_candidates: tuple[str, ...]
    object_candidates: tuple[str, ...]
    extraction: Extraction

    @property
    def texts(self) -> tuple[str, ...]:
        """All prompt texts: verb candidates, object candidates, action."""
        return (*self.verb_candidates, *self.object_candidates, self.action)


def build_prompts(query: str, extraction: Extraction, templates: Templates) -> QueryPrompts:
    """Fill the templates; a missing verb or object falls back to its generic prompt."""
    verbs = tuple(templates.verb.format(verb) for verb in extraction.verbs) or (templates.no_verb,)
    objects = tuple(templates.object.format(obj) for obj in extraction.objects) or (
        templates.no_object,
    )
    return QueryPrompts(
        query=query,
        action=templates.action.format(extraction.action),
        verb_candidates=verbs,
        object_candidates=objects,
        extraction=extraction,
    )
