"""Issue 16, items 9-13: ingest under hostile and careless input (data/adversarial_corpus.py writes each kind).

Checked against what a user wrote (the subtitle text in the table, the bytes of the files), what ffprobe,
the file system and WebRTC's voice-activity detector say of the media, and what a real build (Prefect local
mode, the zero-download line-up data/configs/cpu-signals.toml) writes to manifest.parquet and the dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotators.signals.clues import acoustic_clue, speaks
from annotators.signals.describe import describe
from annotators.signals.prosody import measure_audio
from data import adversarial_corpus as adv
from flows.build_coarse import build_coarse, probe_batch
from runtime.checkpoint import Checkpoint
from schemas.config import MediaConfig
from schemas.errors import UserError
from schemas.manifest import ClipStatus, Subtitles
from schemas.signals import ClipSignals
from stages.ingest import discover, probe_clip, read_subtitles

ROOT = Path(__file__).resolve().parents[2]
MEDIA = MediaConfig()


def probe(path: Path):
    return probe_clip(path, Subtitles(), None, MEDIA.audio_max_seconds, MEDIA.silence_threshold_db)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> adv.AdversarialCorpus:
    return adv.write_adversarial_corpus(tmp_path_factory.mktemp("adversarial") / "corpus")


# ---------------------------------------------------------------- 9: subtitle tables


def as_written(rows=adv.CHINESE_ROWS) -> dict[str, tuple[str, str]]:
    return {name: (chinese, english) for name, chinese, english in rows}


@pytest.mark.parametrize("kind", ["gb18030.csv", "utf16.csv", "utf8_bom.csv"])
def test_gb18030_utf16_and_utf8_bom_tables_are_read_as_written(corpus, kind):
    subs = read_subtitles(corpus.tables[kind])
    assert {name: (s.chinese, s.english) for name, s in subs.items()} == as_written()


def test_a_table_with_one_bad_byte_stops_with_its_file_line_and_byte_offset(tmp_path):
    table, line, offset = adv.bad_byte_table(tmp_path / "subtitle_chieng.csv")
    with pytest.raises(UserError) as raised:
        read_subtitles(table)
    message = str(raised.value)
    assert str(table) in message and f"line {line}" in message and f"byte offset {offset}" in message
    assert len(message.splitlines()) == 1 and "UTF-8" in message


def test_a_binary_file_given_as_the_table_stops_with_one_line_naming_it(corpus):
    with pytest.raises(UserError) as raised:
        read_subtitles(corpus.tables["binary.csv"])
    message = str(raised.value)
    assert str(corpus.tables["binary.csv"]) in message and "line 1, byte offset" in message
    assert len(message.splitlines()) == 1


def test_a_1_mb_cell_is_read_whole(corpus):
    subs = read_subtitles(corpus.tables["huge_cell.csv"])
    assert len(subs["clip_a"].english) > 1_000_000 and subs["clip_b"].english == adv.CHINESE_ROWS[1][2]


def test_quoted_newlines_tabs_and_runs_of_spaces_become_single_spaces(corpus):
    subs = read_subtitles(corpus.tables["quoted_newline.csv"])
    assert subs["clip_a"].english == "I am so happy, I finally passed the exam!"
    assert subs["clip_a"].chinese == "我真的 太开心了"


def test_control_and_bidi_override_characters_are_removed_and_recorded(corpus):
    subs = read_subtitles(corpus.tables["control_characters.csv"])["clip_a"]
    assert (subs.chinese, subs.english) == ("我真的太开心了", "I am so happy!")
    assert subs.removed_characters == ["U+0000", "U+0007", "U+0008", "U+001B", "U+202E"]
    assert read_subtitles(corpus.tables["control_characters.csv"])["clip_b"].removed_characters == []


def test_a_name_given_twice_with_other_text_keeps_the_later_row_and_records_the_dropped_one(corpus):
    subs = read_subtitles(corpus.tables["duplicate_names.csv"])
    assert (subs["clip_a"].chinese, subs["clip_a"].english) == ("我很难过。", "I am so sad.")
    [conflict] = subs["clip_a"].conflicts
    assert (conflict.line, conflict.kept_line) == (2, 6)  # line 4 repeated on line 6: still line 2 was dropped
    assert (conflict.chinese, conflict.english) == tuple(adv.CHINESE_ROWS[0][1:])
    assert subs["clip_b"].conflicts == []  # the same text twice is no conflict


# ---------------------------------------------------------------- 10: paths that look like options


def test_a_clip_named_like_an_option_is_probed_as_a_file(corpus, monkeypatch):
    monkeypatch.chdir(corpus.root / "video")  # `emer-coarse build .`: the clip's path is the bare name
    [dash] = [p for p in discover(Path(".")).clips if p.name == "-dash.mp4"]
    assert str(dash) == "-dash.mp4"
    record = probe(dash)
    assert record.status is ClipStatus.ok, record.error
    assert record.duration > 1 and record.has_audio and record.audio_stream == 0


# ---------------------------------------------------------------- 11: several audio streams


def test_speech_on_the_second_audio_stream_is_found_and_the_stream_recorded(corpus):
    record = probe(corpus.clips["second_stream"])
    assert record.status is ClipStatus.ok, record.error
    assert (record.audio_streams, record.audio_stream) == (2, 1)
    assert "with sound" in record.audio_stream_reason


def test_of_two_audio_streams_with_sound_the_default_one_is_chosen(tmp_path):
    clip = adv.two_speaking_streams_clip(tmp_path / "two.mp4", default=1)
    record = probe(clip)
    assert (record.status, record.audio_streams, record.audio_stream) == (ClipStatus.ok, 2, 1)
    assert "default" in record.audio_stream_reason


# ---------------------------------------------------------------- 12: the probe cache


def test_a_same_size_replacement_with_its_mtime_restored_is_probed_and_hashed_again(corpus, tmp_path):
    clip = tmp_path / "adv_replaced.mp4"
    clip.write_bytes(corpus.clips["replaced"].read_bytes())
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    try:
        [first] = probe_batch.fn([clip], {}, None, MEDIA, checkpoint)
        before = clip.stat()
        adv.replace_keeping_size_and_mtime(clip, corpus.replacement)
        after = clip.stat()
        assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
        [second] = probe_batch.fn([clip], {}, None, MEDIA, checkpoint)
    finally:
        checkpoint.close()
    assert first.sha256 == hashlib.sha256(corpus.clips["replaced"].read_bytes()).hexdigest()
    assert second.sha256 == hashlib.sha256(corpus.replacement.read_bytes()).hexdigest() != first.sha256
    assert second.duration != first.duration  # measured again, not only hashed


# ---------------------------------------------------------------- 13: odd files


def test_symlink_loops_and_dangling_links_are_invalid_clips_with_a_reason(corpus, tmp_path):
    links = {"loop_a": "symbolic link loop", "loop_self": "symbolic link loop", "dangling": "dangling symbolic link"}
    found = {p.name for p in discover(corpus.root / "video").clips}
    for kind, reason in links.items():
        path = corpus.clips[kind]
        assert path.name in found, kind
        checkpoint = Checkpoint(tmp_path / f"{kind}.sqlite")
        [record] = probe_batch.fn([path], {}, None, MEDIA, checkpoint)
        checkpoint.close()
        assert (record.name, record.status) == (path.stem, ClipStatus.invalid)
        assert record.error.startswith(reason) and os.readlink(path) in record.error


def test_appledouble_and_hidden_files_are_not_clips_and_are_logged_with_a_count(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="stages.ingest"):
        found = {p.name for p in discover(corpus.root / "video").clips}
    hidden = {p.name for p in corpus.not_clips}
    assert hidden == {"._adv_good.mp4", ".adv_good.mp4"} and not found & hidden
    assert "2 hidden file(s) skipped" in caplog.text and all(name in caplog.text for name in hidden)


def test_a_png_renamed_mp4_is_reported_as_a_png_image(corpus):
    record = probe(corpus.clips["png"])
    assert (record.status, record.error) == (ClipStatus.invalid, "not a video: PNG image")


def test_a_short_clip_that_is_mostly_speech_is_not_described_as_silent(corpus, tmp_path):
    wav = tmp_path / "short.wav"  # the track as media prep hands it to the measurements: 16 kHz mono PCM
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(corpus.clips["short"]), "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"]
        + [str(wav)],
        check=True,
    )
    audio = measure_audio(str(wav))
    assert audio.seconds < 0.25 and audio.speech_ratio > 0.8  # the voice-activity detector hears speech
    assert speaks(audio)
    assert acoustic_clue(audio).clues.startswith(f"Speech fills {audio.speech_ratio:.0%} of the track")
    _, description = describe("Ah", ClipSignals(audio=audio))
    assert "no speech is heard" not in description and "brief speech" in description


# ---------------------------------------------------------------- a build over all of it


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> tuple[dict, dict[str, dict], dict[str, dict]]:
    """(summary, manifest rows, dataset rows) of one build over the whole adversarial corpus."""
    out = tmp_path_factory.mktemp("adversarial-build") / "out"
    summary = build_coarse(str(corpus.root), str(out), str(ROOT / "data" / "configs" / "cpu-signals.toml"))
    manifest = {r["name"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    rows = {r["name"]: r for shard in (out / "data").glob("*.parquet") for r in pq.read_table(shard).to_pylist()}
    return summary, manifest, rows


def test_a_build_over_the_adversarial_corpus_accounts_for_every_clip(corpus, built):
    summary, manifest, rows = built
    clip_files = {p.stem for p in corpus.clips.values()}
    assert set(manifest) == clip_files and summary["clips"] == len(clip_files)  # hidden files are no rows
    assert set(rows) == clip_files  # every clip in some split, the bad ones in `failed` with their reason
    good = ("adv_good", "-dash", "adv_second_stream", "adv_short", "adv_replaced")
    assert {name: manifest[name]["status"] for name in good} == dict.fromkeys(good, "ok")
    for name in ("adv_png", "adv_loop_a", "adv_loop_b", "self_adv_loop_a", "adv_dangling"):
        assert manifest[name]["status"] == "invalid" and manifest[name]["error"], name
        assert rows[name]["errors"][0]["message"] == manifest[name]["error"]
    for name in ("adv_good", "-dash", "adv_second_stream"):
        assert rows[name]["complete"], (name, rows[name]["errors"])
    assert manifest["adv_second_stream"]["audio_stream"] == 1


def test_the_manifest_row_records_what_ingest_removed_from_a_subtitle_and_the_row_it_dropped(built):
    _, manifest, rows = built
    subtitles = manifest["adv_good"]["subtitles"]
    assert subtitles["english"] == "I am so happy, I finally passed the exam!"  # GB18030, newline and controls
    assert subtitles["removed_characters"] == ["U+0000", "U+0007", "U+0008", "U+001B", "U+202E"]
    assert [(c["line"], c["kept_line"], c["english"]) for c in subtitles["conflicts"]] == [(2, 6, "Hello there.")]
    assert rows["adv_good"]["complete"]  # the cleaned subtitle is translated like any other


def test_the_build_hears_the_speech_on_a_second_audio_stream(built):
    _, _, rows = built
    assert rows["adv_second_stream"]["signals"]["audio"]["speech_ratio"] > 0.3
    assert "no speech is heard" not in rows["adv_second_stream"]["description_en"]


def test_the_build_describes_and_translates_a_0_2_s_spoken_clip(built):
    _, _, rows = built
    row = rows["adv_short"]
    assert row["complete"], row["errors"]
    assert "no speech is heard" not in row["description_en"]
