"""Ingest: every clip and every subtitle row is accounted for, with a reason when it is bad."""

from pathlib import Path

import pytest

from data import synth_clips as synth
from schemas.manifest import ClipStatus, SubtitleConflict, Subtitles
from stages.ingest import discover, missing_clip_records, probe_clip, read_subtitles


def probe(path: Path):
    return probe_clip(path, Subtitles(), None, max_audio_s=30, silence_db=-60)


def test_mer_layout_is_read_as_it_is(mer_corpus):
    corpus = discover(mer_corpus)
    assert corpus.subtitle_table.name == "subtitle_chieng.csv"
    assert [p.stem for p in corpus.clips][:3] == ["sample_00000001", "sample_00000002", "sample_00000010"]
    assert corpus.subtitles["sample_00000002"] == Subtitles(chinese="你为什么总是这样对我？", english=None)
    assert corpus.subtitles["sample_00000010"] == Subtitles()


def test_transcription_table_with_chinese_only(tmp_path):
    table = tmp_path / "transcription-merge.csv"
    table.write_text("name,chinese\nsample_00000001.mp4,我很好\nsample_00000002,\n", encoding="utf-8-sig")
    subs = read_subtitles(table)
    assert subs == {"sample_00000001": Subtitles(chinese="我很好"), "sample_00000002": Subtitles()}


def test_bad_subtitle_rows_are_reported_not_dropped_silently(tmp_path, caplog):
    table = tmp_path / "subtitles.csv"
    table.write_text("name,chinese,english\n,孤儿行,orphan\na,一,one\na,二,two\n", encoding="utf-8")
    subs = read_subtitles(table)
    dropped = SubtitleConflict(line=3, kept_line=4, chinese="一", english="one")
    assert subs == {"a": Subtitles(chinese="二", english="two", conflicts=[dropped])}  # the later row, and the other
    assert "line 2: no clip name" in caplog.text and "line 4: a appears again" in caplog.text


def test_a_table_without_a_name_column_is_a_clear_error(tmp_path):
    table = tmp_path / "subtitles.csv"
    table.write_text("clip,chinese\na,一\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no 'name' column"):
        read_subtitles(table)


def test_plain_folder_without_table(tmp_path, good_clip):
    (tmp_path / "a.mp4").write_bytes(good_clip.read_bytes())
    corpus = discover(tmp_path)
    assert [p.name for p in corpus.clips] == ["a.mp4"] and corpus.subtitles == {}


def test_good_clip_is_probed(good_clip):
    record = probe(good_clip)
    assert record.status is ClipStatus.ok and record.error is None
    assert (record.width, record.height, record.fps) == (320, 180, 25.0)
    assert record.has_audio and record.duration > 1.5 and len(record.sha256) == 64 and record.bytes > 0


def test_each_bad_kind_gets_a_status_and_a_reason(mer_corpus):
    records = {p.stem: probe(p) for p in discover(mer_corpus).clips}
    expected = {
        "sample_00000010": (ClipStatus.silent, "silent audio"),
        "sample_00000011": (ClipStatus.silent, "no audio stream"),
        "sample_00000012": (ClipStatus.invalid, "empty file"),
        "sample_00000013": (ClipStatus.invalid, "ffprobe cannot read it"),
        "sample_00000014": (ClipStatus.invalid, "truncated"),
    }
    for name, (status, reason) in expected.items():
        assert records[name].status is status, (name, records[name].error)
        assert reason in records[name].error


def test_subtitle_row_without_clip_is_reported(mer_corpus):
    missing = missing_clip_records(discover(mer_corpus))
    assert [(m.name, m.status) for m in missing] == [("sample_00000099", ClipStatus.missing)]
    assert "no clip file" in missing[0].error


def test_content_hash_follows_content_not_name(tmp_path, good_clip):
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(good_clip.read_bytes())
    assert probe(copy).sha256 == probe(good_clip).sha256
    other = synth.silent_clip(tmp_path / "other.mp4")
    assert probe(other).sha256 != probe(good_clip).sha256
