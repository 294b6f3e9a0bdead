"""Reading a table a user gives (a subtitle table, a gold or prediction label file) as text.

Only what such tables really come in: a byte-order mark says the encoding; else UTF-8, else GB18030
(Chinese spreadsheets; a superset of GBK and GB2312). By hand, because a general detector (chardet,
charset-normalizer) guesses among dozens of code pages, and guesses differently for a short table;
these three are decided by strict decoding alone. A file that is none of them stops with its name,
the line and the byte offset of the first bad byte."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from schemas.errors import UserError

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# What GB18030-decoded text that really is Chinese consists of, besides ASCII: CJK ideographs, CJK and fullwidth
# punctuation, general punctuation (quotes, dashes, ellipses). Bytes that only happen to decode are mostly other.
_CHINESE_TEXT = re.compile(
    r"[\u00b7\u2000-\u206f\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
)


class TableNotText(UserError):
    pass


def decode_text_table(path: Path, error: type[UserError] = TableNotText) -> tuple[str, str]:
    """(text, encoding) of the table at `path`; `error` (naming the file, line and byte) when it is not text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _text_not_binary(path, data, data[len(bom) :].decode(encoding), error), encoding
            except UnicodeDecodeError as exc:
                raise _undecodable(path, data, encoding, len(bom) + exc.start, error) from None
    try:
        return _text_not_binary(path, data, data.decode("utf-8"), error), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    # Mostly valid multi-byte UTF-8: a UTF-8 table with a bad byte, not another encoding (GB18030 text yields a
    # valid UTF-8 character now and then, among far more errors).
    lenient = data.decode("utf-8", errors="replace")
    replaced = lenient.count("\ufffd")
    if sum(1 for c in lenient if ord(c) >= 0x80) - replaced >= 2 * replaced:
        raise _undecodable(path, data, "utf-8", utf8_error.start, error)
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        offset, encoding = max((utf8_error.start, "utf-8"), (exc.start, "gb18030"))  # the reading that got further
        raise _undecodable(path, data, encoding, offset, error) from None
    others = [c for c in text if ord(c) >= 0x80 and not _CHINESE_TEXT.match(c)]
    if len(others) > len([c for c in text if ord(c) >= 0x80]) // 10:
        raise _undecodable(path, data, "utf-8", utf8_error.start, error)
    return _text_not_binary(path, data, text, error), "gb18030"


def _text_not_binary(path: Path, data: bytes, text: str, error: type[UserError]) -> str:
    """NUL bytes decode in every encoding: a few are a hostile cell (removed later), many are no text."""
    if text.count("\x00") * 10 > len(text):
        offset = data.index(b"\x00")
        line = data[:offset].count(b"\n") + 1
        raise error(
            f"{path}: line {line}, byte offset {offset}: NUL bytes throughout, so not a text table (UTF-16 without "
            "a byte-order mark, or a binary file); save the table as UTF-8 and run again."
        )
    return text


def _undecodable(path: Path, data: bytes, encoding: str, offset: int, error: type[UserError]) -> UserError:
    line = data[:offset].decode(encoding, errors="replace").count("\n") + 1
    return error(
        f"{path}: line {line}, byte offset {offset} (0x{data[offset]:02X}): not UTF-8, UTF-16 or GB18030 text; "
        "save the table as UTF-8 (or fix that byte) and run again."
    )
