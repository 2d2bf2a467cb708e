"""Sources of user tasks (no Python to write): each module reads one layout of a user's corpus into the
same list of `Clip`s (`tasks.sources.corpus`), which `tasks.usertask` turns into a parquet index and a
`TaskSpec`. The layouts: `folder` (class folders), `manifest` (CSV / JSONL), `hear` (a HEAR task
directory), `hubid` (any hub dataset by id). `SOURCES` maps the `source:` value of a task YAML to its
`Source` (reader, required field, shorthand or not); each reader registers itself with `@register_source`."""

from tasks.sources.corpus import SOURCES, Source, register_source, shorthands

__all__ = ["SOURCES", "Source", "register_source", "shorthands"]
