"""`wecom-stream tail TOPIC`: a topic's committed records for an operator, as readable lines
on a terminal or as JSON lines, filtered by key, tenant, fields or headers, from a time.

Message text is customer chat and is printed on purpose; topics carry no credentials (the
ingress strips the platform's `token` before publishing). The command line is
`wecom_stream.commands.tail`.
"""

from wecom_stream.tail._consume import Output, StopTail, TailOptions, tail_records
from wecom_stream.tail._filters import RecordFilter, Where, parse_since, parse_where
from wecom_stream.tail._lines import clean, format_line, summary, topic_kind
from wecom_stream.tail._output import ConsoleOutput, JsonOutput
from wecom_stream.tail._records import RecordView, record_line

__all__ = [
    "ConsoleOutput",
    "JsonOutput",
    "Output",
    "RecordFilter",
    "RecordView",
    "StopTail",
    "TailOptions",
    "Where",
    "clean",
    "format_line",
    "parse_since",
    "parse_where",
    "record_line",
    "summary",
    "tail_records",
    "topic_kind",
]
