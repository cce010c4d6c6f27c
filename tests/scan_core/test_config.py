"""params.yaml validation: every problem named with its key, its value and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

import yaml

from scan_core.config import (ParamsError, Params, check_against_data, default_params_yaml, known_keys, load_params,
                              validate_params)

PROJECT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _message(raw: dict) -> str:
    with pytest.raises(ParamsError) as caught:
        validate_params(raw)
    return str(caught.value)


def test_defaults_and_project_params_are_valid() -> None:
    assert validate_params({}) == Params()
    assert validate_params(None).scan.entropy_weight == 5.0
    params = load_params(PROJECT_PARAMS)
    assert params.data.name == "digits" and params.pretext.backbone == "auto" and params.data.recipe == "auto"


def test_values_are_parsed_into_typed_groups() -> None:
    params = validate_params({"scan": {"entropy_weight": 2, "num_clusters": 20}, "mine": {"topk": 30},
                              "selflabel": {"threshold": 0.95}})
    assert params.scan.entropy_weight == 2.0 and isinstance(params.scan.entropy_weight, float)
    assert params.scan.num_clusters == 20 and params.selflabel.threshold == 0.95


def test_unknown_key_suggests_the_close_one() -> None:
    message = _message({"scan": {"entropy_wieght": 5.0}})
    assert "unknown key scan.entropy_wieght" in message
    assert "did you mean scan.entropy_weight?" in message


def test_unknown_key_without_close_match_lists_the_group() -> None:
    message = _message({"mine": {"zzz": 1}})
    assert "unknown key mine.zzz" in message
    assert "mine.topk" in message


def test_unknown_group_names_what_is_valid() -> None:
    message = _message({"scna": {"epochs": 3}})
    assert "unknown key scna" in message
    assert "scan" in message.split("unknown key scna", 1)[1]


@pytest.mark.parametrize(
    "raw, key, value",
    [
        ({"scan": {"entropy_weight": -1.5}}, "scan.entropy_weight", "-1.5"),
        ({"selflabel": {"threshold": 1.0}}, "selflabel.threshold", "1.0"),
        ({"selflabel": {"threshold": 0}}, "selflabel.threshold", "0"),
        ({"selflabel": {"threshold": 1.2}}, "selflabel.threshold", "1.2"),
        ({"scan": {"num_clusters": 1}}, "scan.num_clusters", "1"),
        ({"pretext": {"batch_size": 0}}, "pretext.batch_size", "0"),
        ({"scan": {"batch_size": 0}}, "scan.batch_size", "0"),
        ({"embed": {"batch_size": 0}}, "embed.batch_size", "0"),
        ({"selflabel": {"batch_size": 0}}, "selflabel.batch_size", "0"),
        ({"scan": {"epochs": "ten"}}, "scan.epochs", "'ten'"),
        ({"scan": {"epochs": 2.5}}, "scan.epochs", "2.5"),
        ({"augment": {"hflip": "maybe"}}, "augment.hflip", "'maybe'"),
        ({"pretext": {"backbone": "vgg16"}}, "pretext.backbone", "'vgg16'"),
    ],
)
def test_invalid_value_message_names_key_and_value(raw: dict, key: str, value: str) -> None:
    message = _message(raw)
    assert message.startswith("params.yaml: ")
    assert f"{key} = {value} is invalid" in message


def test_out_of_range_messages_say_what_is_valid() -> None:
    assert "greater than or equal to 0" in _message({"scan": {"entropy_weight": -1}})
    assert "less than 1" in _message({"selflabel": {"threshold": 1.0}})
    assert "greater than 0" in _message({"selflabel": {"threshold": 0.0}})
    assert "greater than or equal to 2" in _message({"scan": {"num_clusters": 1}})
    assert "small_cnn" in _message({"pretext": {"backbone": "vgg16"}})


def test_more_neighbors_than_mined_is_refused() -> None:
    message = _message({"scan": {"num_neighbors": 30}, "mine": {"topk": 5}})
    assert "scan.num_neighbors = 30" in message
    assert "mine.topk = 5" in message
    assert validate_params({"scan": {"num_neighbors": 5}, "mine": {"topk": 5}}).scan.num_neighbors == 5


def test_a_spectral_start_without_neighbors_is_refused() -> None:
    message = _message({"scan": {"init": "spectral", "num_neighbors": 0}})
    assert "scan.init: spectral" in message and "scan.num_neighbors" in message
    assert validate_params({"scan": {"init": "spectral", "num_neighbors": 1}}).scan.init == "spectral"


def test_start_sizes_from_a_random_start_are_refused() -> None:
    message = _message({"scan": {"cluster_sizes": "start", "init": "random"}})
    assert "scan.cluster_sizes: start" in message and "scan.init: random" in message
    assert validate_params({"scan": {"cluster_sizes": "start", "init": "spectral"}}).scan.cluster_sizes == "start"


def test_every_problem_is_listed() -> None:
    message = _message({"scan": {"num_clusters": 1, "entropy_weight": -1}, "pretext": {"batch_size": 0}})
    for key in ("scan.num_clusters", "scan.entropy_weight", "pretext.batch_size"):
        assert key in message


def test_load_params_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("scan: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)
    broken.write_text("scan:\n  num_clusters: 1\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: scan\.num_clusters = 1 is invalid"):
        load_params(broken)


def test_known_keys_are_dotted_leaves() -> None:
    keys = known_keys()
    assert "scan.entropy_weight" in keys and "selflabel.threshold" in keys and "mine.topk" in keys


def test_size_dependent_limits_name_key_value_and_image_count() -> None:
    params = validate_params({"mine": {"topk": 20}, "scan": {"num_neighbors": 5, "num_clusters": 10}})
    check_against_data(params, 21)  # topk 20 < 21 images, 10 clusters <= 21
    with pytest.raises(ParamsError, match=r"mine\.topk = 20 is invalid: .*\(20\)"):
        check_against_data(params, 20)
    with pytest.raises(ParamsError) as caught:
        check_against_data(params, 8)
    assert "mine.topk = 20" in str(caught.value) and "scan.num_clusters = 10" in str(caught.value)
    check_against_data(validate_params({"mine": {"topk": 5}, "scan": {"num_neighbors": 5, "num_clusters": "auto"}}), 8)


@pytest.mark.parametrize("key", ["data.image_size", "pretext.epochs", "pretext.batch_size", "scan.epochs", "scan.num_clusters",
                                 "scan.batch_size", "selflabel.epochs", "selflabel.batch_size"])
def test_auto_keys_take_auto_or_a_number_and_say_so_when_neither(key: str) -> None:
    group, name = key.split(".")
    assert getattr(getattr(validate_params({group: {name: "auto"}}), group), name) == "auto"
    assert getattr(getattr(validate_params({group: {name: 16}}), group), name) == 16
    message = _message({group: {name: "big"}})
    assert f"{key} = 'big' is invalid: use 'auto' or a whole number" in message
    assert message.count(key) == 1


@pytest.mark.parametrize("key, number, message", [
    ("augment.hflip", True, "use 'auto', true or false"),
    ("augment.rotation", 10.0, "use 'auto' or a number"),
    ("augment.crop_min_scale", 0.5, "use 'auto' or a number"),
    ("augment.jitter_strength", 0.3, "use 'auto' or a number"),
])
def test_recipe_keys_take_auto_or_a_value_and_say_so_when_neither(key: str, number: object, message: str) -> None:
    group, name = key.split(".")
    assert getattr(getattr(validate_params({group: {name: "auto"}}), group), name) == "auto"
    assert getattr(getattr(validate_params({group: {name: number}}), group), name) == number
    problem = _message({group: {name: "big"}})
    assert f"{key} = 'big' is invalid: {message}" in problem and problem.count(key) == 1


def test_recipe_and_backbone_name_their_choices() -> None:
    assert validate_params({"data": {"recipe": "photo"}}).data.recipe == "photo"
    message = _message({"data": {"recipe": "cartoon"}})
    assert "data.recipe = 'cartoon' is invalid" in message and "small_grayscale" in message and "photo" in message
    assert validate_params({"pretext": {"backbone": "auto"}}).pretext.backbone == "auto"


# --- params.yaml and the schema: one set of defaults ---------------------------------------

def _project_lines() -> list[str]:
    return PROJECT_PARAMS.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("key", known_keys())
def test_every_value_in_params_yaml_is_the_schema_default(key: str) -> None:
    group, name = key.split(".")
    written = yaml.safe_load(PROJECT_PARAMS.read_text())[group][name]
    assert getattr(getattr(validate_params({group: {name: written}}), group), name) == \
        getattr(getattr(Params(), group), name)


# Every line but the groups' headers (without one, its keys would be read as groups).
KEY_AND_COMMENT_LINES = [number for number, line in enumerate(_project_lines()) if not line[:1].isalpha()]


@pytest.mark.parametrize("number", KEY_AND_COMMENT_LINES)
def test_params_yaml_with_any_one_line_deleted_is_the_same_params(number: int) -> None:
    lines = _project_lines()
    raw = yaml.safe_load("".join(lines[:number] + lines[number + 1:]))
    assert validate_params(raw) == Params()


def test_params_yaml_without_a_whole_group_is_the_same_params() -> None:
    for group in Params.model_fields:
        raw = yaml.safe_load(PROJECT_PARAMS.read_text())
        del raw[group]
        assert validate_params(raw) == Params()


def test_default_params_yaml_is_complete_and_loads_as_the_defaults(tmp_path: Path) -> None:
    text = default_params_yaml({})
    raw = yaml.safe_load(text)
    assert [f"{group}.{key}" for group, values in raw.items() for key in values] == known_keys()
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml") == Params()
    assert text.startswith("# ")


def test_default_params_yaml_applies_overrides_stably(tmp_path: Path) -> None:
    overrides = {"data.name": "folder", "data.root": "/home/me/My Photos: 2024", "scan.num_clusters": "auto",
                 "augment.hflip": False, "pretext.epochs": 3, "selflabel.threshold": 0.9}
    text = default_params_yaml(overrides)
    assert default_params_yaml(dict(reversed(overrides.items()))) == text  # same input, same bytes
    (tmp_path / "params.yaml").write_text(text)
    expected = validate_params({"data": {"name": "folder", "root": "/home/me/My Photos: 2024"},
                                "scan": {"num_clusters": "auto"}, "augment": {"hflip": False},
                                "pretext": {"epochs": 3}, "selflabel": {"threshold": 0.9}})
    assert load_params(tmp_path / "params.yaml") == expected


def test_default_params_yaml_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ParamsError, match=r"unknown key scan\.entropy_weigth; did you mean scan\.entropy_weight\?"):
        default_params_yaml({"scan.entropy_weigth": 2.0})
    with pytest.raises(ParamsError, match="unknown key nonsense"):
        default_params_yaml({"nonsense": 1})
    with pytest.raises(ParamsError, match=r"scan\.num_clusters = 1 is invalid"):
        default_params_yaml({"scan.num_clusters": 1})
