"""Registry, factory, metadata contract and entry-point plug-ins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mds.errors import EvaluatorError
from mds.evaluators import create_evaluator, list_evaluators
from mds.evaluators.base import Evaluator, LabelKind
from mds.evaluators.registry import BUILTIN, get_spec

SEED_KINDS = {
    "cpu-default": LabelKind.SCALAR,
    "vqr1": LabelKind.SCALAR,
    "medea": LabelKind.BINARY,
    "short-drama": LabelKind.ORDINAL,
    "vrthinker": LabelKind.PAIRWISE,
    "videoscore2": LabelKind.MULTIDIM,
}


def test_all_seed_evaluators_listed_with_label_kinds() -> None:
    specs = {s.name: s for s in list_evaluators()}
    assert {n: specs[n].label.kind for n in SEED_KINDS} == SEED_KINDS
    assert specs["vrthinker"].label.dimensions == ("TA", "VQ", "MQ", "OA")
    assert specs["videoscore2"].label.dimensions == (
        "visual_quality",
        "t2v_alignment",
        "physical_consistency",
    )
    assert specs["medea"].label.choices == ("支持", "非明确支持")
    assert all(s.label.higher_is_better for s in specs.values())


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_table_metadata_matches_the_class(name: str) -> None:
    spec = BUILTIN[name]
    cls = spec.load_class()
    assert issubclass(cls, Evaluator)
    assert cls.name == spec.name and cls.label == spec.label and cls.modality == spec.modality


def test_defaults_then_overrides_and_version() -> None:
    ev = create_evaluator("vqr1")
    assert (
        ev.options["top_k"] == 50
        and ev.options["fps"] == 2.0
        and ev.options["model"] == "hollow404/VQR1-7B-YouTubeUGC"
    )
    ev2 = create_evaluator("VisualQuality-R1", model="/models/vqr1", top_k=20)  # alias, case-insensitive
    assert ev2.name == "vqr1" and ev2.options["top_k"] == 20 and ev2.options["fps"] == 2.0
    assert ev.version != ev2.version and ev.version.startswith("vqr1:hollow404/VQR1-7B-YouTubeUGC:")
    # runtime-only options do not change the version; outputs-affecting ones do
    assert create_evaluator("vqr1", batch_size=32, concurrency=2).version == ev.version
    assert create_evaluator("vqr1", temperature=0.1).version != ev.version
    assert create_evaluator("vqr1", adapter="/a").model_id == "hollow404/VQR1-7B-YouTubeUGC+/a"


def test_unknown_names_and_options() -> None:
    with pytest.raises(EvaluatorError, match="did you mean 'vqr1'"):
        create_evaluator("vqr")
    with pytest.raises(EvaluatorError, match="did you mean 'videoscore2'"):
        get_spec("videoscor2")
    with pytest.raises(EvaluatorError, match="unknown option.*'temprature'.*did you mean 'temperature'"):
        create_evaluator("vqr1", temprature=0.5)
    with pytest.raises(EvaluatorError, match="num_frames or fps"):
        create_evaluator("vqr1", num_frames=8, fps=1.0)
    ev = create_evaluator("vqr1", num_frames=8)  # replaces the default fps=2
    assert ev.options["num_frames"] == 8 and "fps" not in ev.options


def test_label_studio_kind_and_error_contract() -> None:
    ev = create_evaluator("videoscore2")
    assert ev.label_studio_kind is LabelKind.MULTIDIM and not ev.is_pairwise
    assert create_evaluator("vrthinker").is_pairwise


def _write_plugin(root: Path) -> None:
    pkg = root / "mds_fake_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent('''
        from mds.evaluators.base import EvalResult, Evaluator, LabelKind, LabelSpec

        class BrightnessEvaluator(Evaluator):
            """Mean brightness of the first frame as a 1-5 score."""

            name = "brightness"
            label = LabelSpec(LabelKind.SCALAR, (1.0, 5.0), True)
            default_options = {"scale": 4.0}
            aliases = ("bright",)

            def predict(self, videos):
                from mds.video.frames import cover_frame

                out = []
                for v in videos:
                    m = float(cover_frame(v.path).mean()) / 255.0
                    s = 1.0 + self.options["scale"] * m
                    out.append(EvalResult(video_id=v.video_id, parse_status="ok", pred_scalar=s))
                return out

            def error(self, result, label):
                return abs(result.pred_scalar - float(label))
    ''')
    )
    dist = root / "mds_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mds-fake-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[mds.evaluators]\nbrightness = mds_fake_plugin:BrightnessEvaluator\nvqr1 = mds_fake_plugin:BrightnessEvaluator\n"
    )


def test_entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clip_dir: Path) -> None:
    """A third-party distribution on sys.path registers through the mds.evaluators entry-point group."""
    _write_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    specs = {s.name: s for s in list_evaluators()}
    assert specs["brightness"].source == "entry-point:mds-fake-plugin"
    assert specs["brightness"].label.kind is LabelKind.SCALAR and specs["brightness"].defaults == {
        "scale": 4.0
    }
    assert specs["vqr1"].source == "builtin"  # a plug-in cannot shadow a built-in name
    from mds.evaluators.base import VideoInput

    ev = create_evaluator("bright", scale=2.0)
    (r,) = ev.predict([VideoInput(path=str(clip_dir / "clip0.mp4"), video_id=1)])
    assert 1.0 < r.pred_scalar < 3.0


def test_import_stays_light() -> None:
    code = (
        "import sys, mds, mds.cli, mds.evaluators, mds.scoring\n"
        "from mds.evaluators import list_evaluators, create_evaluator\n"
        "list_evaluators(); create_evaluator('vqr1'); create_evaluator('medea', base_url='http://x/v1')\n"
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'peft', 'open_clip') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


HUMAN_LABELS = {
    "vqr1": 3.2,
    "medea": "支持",
    "short-drama": 4,
    "vrthinker": {"TA": 1, "VQ": 1, "MQ": 0, "OA": 1},
    "videoscore2": {"visual_quality": 3, "t2v_alignment": 4, "physical_consistency": 2},
}


@pytest.mark.parametrize("name", sorted(HUMAN_LABELS))
def test_adapter_contract(name: str) -> None:
    """Every chat adapter: stable version, failure → no score and no error value, metadata consistent."""
    from mds.evaluators.base import EvalResult

    ev = create_evaluator(name, model="m")
    assert ev.version == create_evaluator(name, model="m").version
    assert ev.version != create_evaluator(name, model="m", seed=123).version
    failed = ev.parse("")
    assert failed.parse_status in ("failed", "truncated") and not failed.ok
    assert failed.pred_scalar is None and failed.raw_text == ""
    assert ev.error(failed, HUMAN_LABELS[name]) is None
    assert ev.label_studio_kind is ev.label.kind
    assert isinstance(failed, EvalResult)
    lo_hi = ev.label.score_range
    assert lo_hi is None or lo_hi[0] < lo_hi[1]
