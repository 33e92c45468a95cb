"""Every field is documented; the JSON Schema is complete; RLinf's names are used."""

from __future__ import annotations

from rlvla_cli.config.schema import RootConfig


def _undocumented(schema: dict) -> list[str]:
    missing = []
    models = {"RootConfig": schema, **schema.get("$defs", {})}
    for model_name, model in models.items():
        for field_name, field in model.get("properties", {}).items():
            if not field.get("description", "").strip():
                missing.append(f"{model_name}.{field_name}")
    return missing


def test_every_field_has_a_description():
    schema = RootConfig.model_json_schema()
    assert len(schema["$defs"]) >= 15  # every sub-model is walked, not just the root
    assert _undocumented(schema) == []


def test_every_model_forbids_unknown_keys():
    schema = RootConfig.model_json_schema()
    for name, model in {"RootConfig": schema, **schema["$defs"]}.items():
        if model.get("type") == "object" and "properties" in model:
            assert model.get("additionalProperties") is False, name


def test_rlinf_key_names():
    fields = RootConfig.model_json_schema()["$defs"]
    assert {"num_nodes", "component_placement"} <= set(fields["ClusterConfig"]["properties"])
    assert {"max_epochs", "max_steps", "val_check_interval", "save_interval", "resume_dir"} <= set(
        fields["RunnerConfig"]["properties"]
    )
    assert {"log_path", "project_name", "experiment_name", "logger_backends"} <= set(
        fields["LoggerConfig"]["properties"]
    )
    assert {"micro_batch_size", "global_batch_size", "enable_offload"} <= set(fields["ActorConfig"]["properties"])
    assert {"lr", "value_lr", "clip_grad", "critic_warmup_steps"} <= set(fields["OptimConfig"]["properties"])
    assert {"pipeline_stage_num", "enable_offload"} <= set(fields["RolloutConfig"]["properties"])


def test_warnings_are_sentences():
    from rlvla_cli.config.loader import load_config

    cfg = load_config(None, ["actor.global_batch_size=4096", "actor.micro_batch_size=32"])
    notes = cfg.warnings()
    assert any("global_batch_size" in note for note in notes)


def test_grpo_eval_groups_warn():
    from rlvla_cli.config.loader import load_config

    cfg = load_config("builtin_grpo_small", ["env.eval.group_size=8"])
    assert any("env.eval.group_size" in note for note in cfg.warnings())
    assert load_config("builtin_grpo_small").warnings() == []


def test_package_exports_are_lazy():
    """Sub-models import ``rlvla_cli.config.base`` without pulling in the whole tree (checked in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys, rlvla_cli.config.base\n"
        "assert 'rlvla_cli.config.schema' not in sys.modules\n"
        "import rlvla_cli.config as c\n"
        "assert c.RootConfig.__name__ == 'RootConfig' and callable(c.load_config)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
