"""Every schema comes from the pydantic models; prompts are versioned data files."""

import json

import pyarrow as pa
import pytest

from annotators.client import parse_reply
from annotators.prompts import PROMPT_DIR, load_prompt
from engine.assembly import role_prompt
from schemas.arrow import arrow_schema, features, to_table
from schemas.config import ROLES, EngineConfig
from schemas.labels import normalise_labels
from schemas.manifest import ClipRecord
from schemas.replies import ClueReply, LabelsReply
from schemas.row import CoarseRow
from schemas.text_clean import strip_leaked_prefix
from stages.registry import METHOD_ROLES, METHOD_STAGES


def test_response_format_is_the_pydantic_json_schema():
    fmt = LabelsReply.response_format()
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema == LabelsReply.model_json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["labels"]


def test_arrow_schema_and_features_come_from_the_row_model():
    schema = arrow_schema(CoarseRow)
    assert schema.names == list(CoarseRow.model_fields)
    assert schema.field("labels").type == pa.list_(pa.string())
    assert set(features(CoarseRow)) == set(CoarseRow.model_fields)
    manifest = arrow_schema(ClipRecord)
    assert manifest.field("status").type == pa.string()  # enums as plain strings
    table = to_table([ClipRecord(name="x")], ClipRecord)
    assert table.to_pylist()[0]["status"] == "ok"


def test_every_role_has_a_prompt_file_and_every_stage_a_reply_model():
    config = EngineConfig()
    assert set(config.roles) == set(ROLES) == set(METHOD_ROLES)
    for role in ROLES:
        prompt = load_prompt(role_prompt(role, config.roles[role], METHOD_STAGES))
        assert prompt.version and prompt.system and prompt.templates
    for stage in METHOD_STAGES.values():
        assert stage.reply.model_json_schema()["type"] == "object"


@pytest.mark.parametrize("path", sorted(PROMPT_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_prompt_templates_fill_without_leftover_placeholders(path):
    prompt = load_prompt(path.stem)
    values = dict.fromkeys(("subtitle", "audio_clue", "visual_clue", "text", "description"), "X")
    for template in prompt.templates:
        system, user = prompt.messages(template, **values)
        assert system["role"] == "system" and "{" not in user["content"]


def test_reply_parsing_admits_control_characters_but_not_wrong_shapes():
    assert parse_reply('{"clues": "a\tb\nc", "emotional_states": []}', ClueReply).clues == "a\tb\nc"
    with pytest.raises(ValueError):
        parse_reply("", ClueReply)
    with pytest.raises(ValueError):
        parse_reply('{"clues": "x"}', ClueReply)  # missing field
    with pytest.raises(ValueError):
        parse_reply('{"labels": ["a"], "extra": 1}', LabelsReply)
    with pytest.raises(json.JSONDecodeError):
        parse_reply('{"labels": ["a"', LabelsReply)


def test_leaked_prompt_scaffolding_is_removed():
    assert strip_leaked_prefix("Output: In the video, the man smiles.") == "In the video, the man smiles."
    assert strip_leaked_prefix("Input: Output: text") == "text"
    assert strip_leaked_prefix("输出：他很开心。") == "他很开心。"
    assert strip_leaked_prefix("The output: stays") == "The output: stays"


def test_prose_replies_are_cleaned_and_blank_ones_rejected():
    from schemas.replies import TranslationReply

    assert parse_reply('{"translation": "Output: 他很开心。"}', TranslationReply).translation == "他很开心。"
    for blank in ('{"translation": "  "}', '{"translation": "Output:"}'):
        with pytest.raises(ValueError):
            parse_reply(blank, TranslationReply)


def test_labels_are_normalised_for_the_emer_metric():
    assert normalise_labels([" Happy", "happy.", "Very  Anxious", "", "'sad'"]) == ["happy", "very anxious", "sad"]


def test_config_file_and_environment(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text("batch_size = 7\n[media]\nmax_frames = 5\n")
    config = EngineConfig.from_file(path)
    assert (config.batch_size, config.media.max_frames) == (7, 5)
    # the environment overrides the file, field by field, nested ones too
    monkeypatch.setenv("EMER_BATCH_SIZE", "128")
    monkeypatch.setenv("EMER_MEDIA__FRAME_MAX_SIDE", "200")
    config = EngineConfig.from_file(path)
    assert (config.batch_size, config.media.max_frames, config.media.frame_max_side) == (128, 5, 200)
    with pytest.raises(ValueError):
        EngineConfig(batch_size=0)


def test_a_line_up_must_name_every_role(tmp_path):
    path = tmp_path / "partial.toml"
    path.write_text('[roles.labels]\nprompt = "labels"\nendpoints = [{ base_url = "http://x/v1", model = "m" }]\n')
    with pytest.raises(ValueError, match="are not configured"):
        EngineConfig.from_file(path)
