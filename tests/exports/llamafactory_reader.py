"""Run inside LLaMA-Factory's own environment (.venv-llamafactory): load an exported dataset the way its
trainer does, and print what it loaded as JSON (tests/exports/test_llamafactory.py reads it).

Which parts of LLaMA-Factory run (llamafactory 0.9.5): `data.parser.get_dataset_list` reads dataset_info.json;
`data.loader._get_merged_dataset` loads the file with datasets and aligns it with `data.converter`'s ShareGPT
converter (role tags, media joined to `media_dir`); for each aligned sample the Qwen2.5-Omni template's
multimodal plugin checks the placeholders against the media (`_validate_messages`) and decodes every video
with PyAV as it does before the processor (`_regularize_videos`). The tokenizer and processor step after it
is not run: Qwen2.5-Omni's processor needs torchvision's video ops, which do not load beside torch 2.13.0+cpu.

usage: python llamafactory_reader.py DATASET_DIR DATASET_NAME
"""

from __future__ import annotations

import json
import sys
import tempfile


def main(dataset_dir: str, name: str) -> None:
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import Seq2SeqTrainingArguments

    (attr,) = get_dataset_list([name], dataset_dir)
    data_args = DataArguments(dataset=name, dataset_dir=dataset_dir)
    model_args = ModelArguments(model_name_or_path="unused")  # only its cache_dir and hub token are read here
    training_args = Seq2SeqTrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[])
    aligned = _get_merged_dataset([name], model_args, data_args, training_args, stage="sft")
    plugin = TEMPLATES["qwen2_omni"].mm_plugin
    samples = []
    for example in aligned:
        videos, audios = example["_videos"] or [], example["_audios"] or []
        plugin._validate_messages(example["_prompt"] + example["_response"], [], videos, audios)
        frames = (
            plugin._regularize_videos(
                videos, image_max_pixels=256 * 256, image_min_pixels=16 * 16, video_fps=2.0, video_maxlen=8
            )["videos"]
            if videos
            else []
        )
        samples.append(
            {
                "prompt": example["_prompt"],
                "response": example["_response"],
                "videos": videos,
                "audios": audios,
                "frames": [len(f) for f in frames],
            }
        )
    print(
        json.dumps(
            {
                "formatting": attr.formatting,
                "load_from": attr.load_from,
                "columns": {"messages": attr.messages, "videos": attr.videos, "audios": attr.audios},
                "media_dir": data_args.media_dir,
                "samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
