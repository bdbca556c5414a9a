"""Every YAML in configs/ composes against its schema; bad keys and types fail early."""
import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError
from hydra.errors import ConfigCompositionException

from shared.cli import available_verbs
from shared.config import CONFIG_DIR

PRIMARY = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def _register_schemas():
    # Importing every verb registers its schema in Hydra's ConfigStore.
    for ep in available_verbs().values():
        ep.load()


def _compose(name, overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


#: Folders of profiles that shared.profiles loads by name (not Hydra groups);
#: tests/shared/test_profiles.py validates every file in them.
PROFILE_DIRS = ("device", "network")


def _group_options():
    """(group, option) for every YAML in a sub-folder of configs/ (profiles aside)."""
    out = []
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONFIG_DIR)
        if len(rel.parts) > 1 and rel.parts[0] not in PROFILE_DIRS:
            out.append(("/".join(rel.parts[:-1]), rel.stem))
    return out


def _primaries_using(group):
    users = []
    for name in PRIMARY:
        defaults = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text()).get("defaults", [])
        for d in defaults:
            key = next(iter(d)) if isinstance(d, dict) else d
            if str(key).lstrip("/").split("@")[0].removeprefix("override ") == group:
                users.append(name)
    return users


def test_every_verb_has_a_config_and_every_config_a_verb():
    verbs = set(available_verbs())
    assert verbs, "no verbs installed"
    assert verbs == set(PRIMARY), f"verbs without config: {verbs - set(PRIMARY)}; configs without verb: {set(PRIMARY) - verbs}"


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_config_composes_to_its_schema(name):
    cfg = _compose(name)
    schema = OmegaConf.get_type(cfg)
    assert schema is not None and schema.__name__.endswith("Config"), f"{name}.yaml is not backed by a schema"
    text = (CONFIG_DIR / f"{name}.yaml").read_text()
    command = f"earshot {name.replace('_', ' ')}"  # sim_train is launched as 'earshot sim train'
    assert text.startswith("#") and command in text.split("defaults:")[0], (
        f"{name}.yaml must open with a comment block giving the launch command"
    )


@pytest.mark.parametrize("name", PRIMARY)
def test_unknown_key_and_wrong_type_fail_at_compose(name):
    with pytest.raises(ConfigCompositionException) as exc:
        _compose(name, ["no_such_key_xyz=1"])
    cause = str(exc.value.__cause__)
    assert "Key 'no_such_key_xyz' not in" in cause and "Config'" in cause, cause
    schema = OmegaConf.get_type(_compose(name))
    typed = [f.name for f in dataclasses.fields(schema) if f.type in ("int", "float", int, float)]
    if typed:
        with pytest.raises(ConfigCompositionException) as exc:
            _compose(name, [f"{typed[0]}=not_a_number"])
        assert isinstance(exc.value.__cause__, ValidationError)


@pytest.mark.parametrize("group, option", _group_options())
def test_group_option_composes(group, option):
    users = _primaries_using(group)
    assert users, f"configs/{group}/{option}.yaml belongs to no primary config's defaults"
    for name in users:
        _compose(name, [f"{group}={option}"])
