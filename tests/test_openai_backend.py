"""The OpenAI-compatible backend and the adapters through it, against a real chat server on loopback."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest

from mds.evaluators import create_evaluator
from mds.evaluators.backends.messages import GenParams, image_part, text_part, video_part
from mds.evaluators.backends.openai_chat import OpenAIChatBackend, to_openai_messages
from mds.evaluators.base import VideoInput
from tests.fixtures.chat_server import ChatServer, Reply, fixed, user_images

VQR1_ANSWER = "<think>sharp, well lit, slight blur</think><answer>3.85</answer>"


def _conv(text: str = "hi") -> list:
    return [{"role": "user", "content": [text_part(text)]}]


def _video(clip_dir: Path, i: int = 0, **meta) -> VideoInput:  # noqa: ANN003
    return VideoInput(
        path=str(clip_dir / f"clip{i}.mp4"),
        video_id=i + 1,
        name=f"clip{i}.mp4",
        meta=meta,
        width=96,
        height=64,
        fps=16.0,
        duration_s=1.0,
        frame_count=16,
    )


def test_retries_on_server_errors_then_succeeds() -> None:
    with ChatServer(lambda body, i: Reply(status=500) if i < 2 else Reply("ok")) as srv:
        be = OpenAIChatBackend("m", base_url=srv.base_url, max_retries=2)
        out = be.generate([_conv()], GenParams(max_new_tokens=5))
    assert out[0][0].text == "ok" and out[0][0].error is None
    assert len(srv.requests) == 3


def test_error_after_retries_is_a_result_not_an_exception() -> None:
    with ChatServer(lambda body, i: Reply(status=503)) as srv:
        be = OpenAIChatBackend("m", base_url=srv.base_url, max_retries=1)
        out = be.generate([_conv(), _conv()], GenParams(), n=2)
    assert len(out) == 2 and all(len(c) == 2 for c in out)
    assert all(c.error and "503" in c.error for cs in out for c in cs)
    assert len(srv.requests) == 4  # two conversations x (1 try + 1 retry)


def test_timeout_is_retried() -> None:
    with ChatServer(lambda body, i: Reply("late", delay=2.0) if i == 0 else Reply("fast")) as srv:
        be = OpenAIChatBackend("m", base_url=srv.base_url, timeout=0.5, max_retries=1)
        t0 = time.perf_counter()
        out = be.generate([_conv()], GenParams())
    assert out[0][0].text == "fast"
    assert time.perf_counter() - t0 < 2.0


def test_concurrency_is_bounded() -> None:
    with ChatServer(lambda body, i: Reply("x", delay=0.2)) as srv:
        be = OpenAIChatBackend("m", base_url=srv.base_url, concurrency=3)
        out = be.generate([_conv(str(i)) for i in range(9)], GenParams())
    assert [c[0].text for c in out] == ["x"] * 9
    assert srv.max_in_flight == 3


def test_request_shape_key_and_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "secret-123")
    with ChatServer(fixed("ok")) as srv:
        be = OpenAIChatBackend("served-name", base_url=srv.base_url, api_key_env="MY_KEY")
        be.generate(
            [_conv()], GenParams(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=77, seed=5), n=2
        )
        be.generate([_conv()], GenParams(do_sample=False))
    body, greedy = srv.requests
    assert srv.headers[0]["authorization"] == "Bearer secret-123"
    assert body["model"] == "served-name" and body["n"] == 2 and body["seed"] == 5
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.6, 0.95, 20, 77)
    assert greedy["temperature"] == 0.0


def test_frames_travel_as_jpeg_data_urls(clip_dir: Path) -> None:
    from PIL import Image

    from mds.video.frames import SamplingConfig, sample_frames

    sf = sample_frames(clip_dir / "clip0.mp4", SamplingConfig(num_frames=4))
    msgs = to_openai_messages(
        [{"role": "user", "content": [video_part(sf), image_part(sf.frames[0]), text_part("q")]}]
    )
    parts = msgs[0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 5 + ["text"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert im.size == (96, 64)
    vj = to_openai_messages([{"role": "user", "content": [video_part(sf)]}], video_mode="video_jpeg")
    vurl = vj[0]["content"][0]["video_url"]["url"]
    assert vurl.startswith("data:video/jpeg;base64,") and vurl.count(",") == 4


# -- adapters through the server ------------------------------------------------------------------------


def test_vqr1_over_openai(clip_dir: Path) -> None:
    with ChatServer(fixed(VQR1_ANSWER)) as srv:
        ev = create_evaluator("vqr1", backend="openai", base_url=srv.base_url, model="vqr1-served")
        res = ev.predict([_video(clip_dir, 0), _video(clip_dir, 1)])
    assert [r.parse_status for r in res] == ["ok", "ok"]
    assert [r.pred_scalar for r in res] == [3.85, 3.85] and [r.video_id for r in res] == [1, 2]
    body = srv.requests[0]
    assert body["top_k"] == 50 and body["top_p"] == 1.0 and body["max_tokens"] == 2048 and body["seed"] == 42
    assert body["messages"][0]["content"][-1]["text"].startswith(
        "You are doing the video quality assessment task."
    )
    assert len(user_images(body)) == 4  # 1 s clip at 2 fps, raised to the 4-frame minimum
    assert res[0].preproc["n_frames"] == 4 and res[0].gen_params["top_k"] == 50


def test_vqr1_samples_and_resampling(clip_dir: Path) -> None:
    answers = ["garbage", "<answer>3.0</answer>", "<answer>4.0</answer>", "<answer>5.0</answer>"]
    with ChatServer(lambda body, i: Reply(answers[min(i, 3)])) as srv:
        ev = create_evaluator(
            "vqr1", backend="openai", base_url=srv.base_url, model="m", resample=3, concurrency=1
        )
        (r,) = ev.predict([_video(clip_dir)])
    assert r.parse_status == "ok" and r.pred_scalar == 3.0
    assert r.parsed["attempts"] == ["failed", "ok"] and "garbage" in r.raw_text and r.n_samples == 2
    with ChatServer(lambda body, i: Reply(answers[1 + i % 3])) as srv:
        ev = create_evaluator(
            "vqr1", backend="openai", base_url=srv.base_url, model="m", n_samples=3, concurrency=1
        )
        (r,) = ev.predict([_video(clip_dir)])
        assert srv.requests[0]["n"] == 3
    assert r.pred_scalar == pytest.approx(3.0)  # the server answers one text for all n choices
    with ChatServer(lambda body, i: Reply("no score here")) as srv:
        ev = create_evaluator("vqr1", backend="openai", base_url=srv.base_url, model="m", resample=2)
        (r,) = ev.predict([_video(clip_dir)])
    assert r.parse_status == "failed" and r.pred_scalar is None and r.n_samples == 3
    assert r.raw_text.count("no score here") == 3


def test_server_failure_becomes_error_result(clip_dir: Path) -> None:
    with ChatServer(lambda body, i: Reply(status=500)) as srv:
        ev = create_evaluator("vqr1", backend="openai", base_url=srv.base_url, model="m", max_retries=0)
        res = ev.predict([_video(clip_dir), VideoInput(path=str(clip_dir / "missing.mp4"), video_id=9)])
    assert [r.parse_status for r in res] == ["error", "error"]
    assert "500" in res[0].error and "input preparation failed" in res[1].error
    assert len(srv.requests) == 1  # the missing file never reached the server


def test_medea_over_openai(clip_dir: Path, shared_dir: Path) -> None:
    out = (shared_dir / "fixtures" / "medea_example_output.txt").read_text()
    meta = {
        "title": "给三角洲一点震撼",
        "tags": ["游戏", "射击游戏", "三角洲行动"],
        "asr": "",
        "category": "游戏",
        "subcategory": "射击游戏",
    }
    with ChatServer(fixed(out)) as srv:
        ev = create_evaluator("medea", base_url=srv.base_url)
        (r,) = ev.predict([_video(clip_dir, 0, **meta)])
    assert r.parse_status == "ok" and r.pred_label == "支持" and r.pred_scalar == pytest.approx(2.236)
    body = srv.requests[0]
    assert body["model"] == "MEDEA" and body["temperature"] == 0.6 and body["top_p"] == 0.95
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts][:4] == ["text", "image_url", "text", "image_url"]
    assert len(user_images(body)) == 8
    text = "".join(p.get("text", "") for p in parts)
    assert '标签: "游戏,射击游戏,三角洲行动"' in text and '时长: "1秒"' in text and '是否竖屏: "否"' in text
    assert r.preproc["fields"]["resolution"] == "96x64"


def test_medea_with_server_side_reasoning_split(clip_dir: Path, shared_dir: Path) -> None:
    out = (shared_dir / "fixtures" / "medea_example_output.txt").read_text()
    think, _, label = out.partition("</think>")
    with ChatServer(fixed(label.strip(), reasoning=think.replace("<think>", "").strip())) as srv:
        ev = create_evaluator("medea", base_url=srv.base_url)
        (r,) = ev.predict([_video(clip_dir)])
    assert r.parse_status == "ok" and r.pred_label == "支持" and r.parsed["n_support"] == 15


def test_videoscore2_and_short_drama_over_openai(clip_dir: Path) -> None:
    vs2 = "<think>ok</think>\n(1) visual quality: 2\n(2) text-to-video alignment: 5\n(3) physical/common-sense consistency: 4"
    with ChatServer(fixed(vs2)) as srv:
        ev = create_evaluator("videoscore2", backend="openai", base_url=srv.base_url)
        (r,) = ev.predict([_video(clip_dir, 0, prompt="a red square moving right")])
    assert r.parse_status == "ok" and r.pred_scalar == 2.0
    assert r.pred_label == {"visual_quality": 2.0, "t2v_alignment": 5.0, "physical_consistency": 4.0}
    assert (
        "Video prompt: a red square moving right\n" in srv.requests[0]["messages"][0]["content"][-1]["text"]
    )
    assert srv.requests[0]["temperature"] == 0.7 and r.preproc["out_of_domain"] is False
    with ChatServer(fixed('{"think": "gripping", "answer": 4}')) as srv:
        ev = create_evaluator(
            "short-drama",
            backend="openai",
            base_url=srv.base_url,
            model="sd",
            answer_format="json",
            num_frames=6,
        )
        eps = [str(clip_dir / f"clip{i}.mp4") for i in range(3)]
        (r,) = ev.predict([_video(clip_dir, 0, episodes=eps)])
    assert r.parse_status == "ok" and r.pred_label == 4
    assert len(user_images(srv.requests[0])) == 6 and len(r.preproc["episodes"]) == 3
    assert srv.requests[0]["temperature"] == 0.0  # greedy by default


def test_vrthinker_tool_loop_over_openai(clip_dir: Path) -> None:
    tool = (
        "<Snapshot>similar</Snapshot><Think>need more</Think><Recommend Answer>TA=1, VQ=0, MQ=0, OA=1, CF=2"
        '</Recommend Answer><tool_call>{"name": "select_frames", "arguments": {"frame_indices": [0, 64, 127]}}'
        "</tool_call>"
    )
    final = (
        "<Snapshot>v1 sharper</Snapshot><Think>video 1 wins</Think><Answer>TA=1, VQ=1, MQ=0, OA=1</Answer>"
    )

    def responder(body: dict, i: int) -> Reply:
        return Reply(final if any("tool_response" in str(m["content"]) for m in body["messages"]) else tool)

    with ChatServer(responder) as srv:
        ev = create_evaluator(
            "vrthinker", backend="openai", base_url=srv.base_url, model="vrt", image_side=64
        )
        (r,) = ev.predict_pairs([(_video(clip_dir, 0, prompt="a square"), _video(clip_dir, 1))])
    assert (
        r.parse_status == "ok"
        and r.pred_label == {"TA": 1, "VQ": 1, "MQ": 0, "OA": 1}
        and r.pred_scalar == 1.0
    )
    assert (r.video_id, r.pair_video_id) == (1, 2)
    assert r.parsed["tool_calls"] == [[0, 64, 127]] and r.parsed["turns"] == 3
    first, second = srv.requests
    assert first["messages"][0]["role"] == "system" and first["messages"][0]["content"].startswith(
        "Task Description:"
    )
    assert len(user_images(first)) == 8 and "Prompt: a square" in str(first["messages"][1]["content"])
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert len(user_images(second)) == 8 + 6  # three indices, paired from both videos
    assert "Retrieved 3 frame pairs ([0, 64, 127]) symmetrically" in str(second["messages"][3]["content"])
    assert "=== tool ===" in r.raw_text and r.raw_text.count("=== assistant ===") == 2


def test_vrthinker_turn_limit_gives_recommendation(clip_dir: Path) -> None:
    tool = (
        "<Recommend Answer>TA=2, VQ=2, MQ=0, OA=2, CF=3</Recommend Answer>"
        '<tool_call>{"name": "select_frames", "arguments": {"frame_indices": [5]}}</tool_call>'
    )
    with ChatServer(fixed(tool)) as srv:
        ev = create_evaluator(
            "vrthinker", backend="openai", base_url=srv.base_url, model="vrt", image_side=32, max_turns=3
        )
        (r,) = ev.predict_pairs([(_video(clip_dir, 2), _video(clip_dir, 3))])
    assert len(srv.requests) == 3
    assert r.parse_status == "recommend_only" and r.pred_scalar == -1.0 and "max_turns" in r.parsed["flags"]
    with pytest.raises(Exception, match="pairs"):
        ev.predict([_video(clip_dir)])


def test_images_are_real_frames(clip_dir: Path) -> None:
    """The data URLs decode to the clip's frames (not placeholders)."""
    from PIL import Image

    from mds.video.frames import sample_frames

    with ChatServer(fixed(VQR1_ANSWER)) as srv:
        ev = create_evaluator("vqr1", backend="openai", base_url=srv.base_url, model="m")
        (r,) = ev.predict([_video(clip_dir, 3)])
    url = user_images(srv.requests[0])[0]
    got = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), dtype=float
    )
    want = (
        sample_frames(clip_dir / "clip3.mp4", indices=r.preproc["frame_indices"][:1]).frames[0].astype(float)
    )
    assert np.abs(got - want).mean() < 8  # JPEG round trip


def test_vrthinker_both_orders_maps_labels_back(clip_dir: Path) -> None:
    """Swapped order: a judge that always prefers the first-shown video disagrees with itself (position bias)."""
    with ChatServer(fixed("<Answer>TA=1, VQ=1, MQ=0, OA=1</Answer>")) as srv:
        ev = create_evaluator(
            "vrthinker", backend="openai", base_url=srv.base_url, model="vrt", image_side=32, both_orders=True
        )
        (r,) = ev.predict_pairs([(_video(clip_dir, 0), _video(clip_dir, 1))])
    assert len(srv.requests) == 2
    assert r.parse_status == "ok" and (r.video_id, r.pair_video_id) == (1, 2)
    assert r.pred_scalar == 0.0 and r.uncertainty == 1.0  # +1 forward, -1 mapped back
    assert r.parsed["reverse"] == {"TA": 2, "VQ": 2, "MQ": 0, "OA": 2} and r.parsed["orders_agree"] is False
    assert "=== order (pair, video) ===" in r.raw_text

    def consistent(body: dict, i: int) -> Reply:  # always prefers clip1 wherever it is shown
        first_is_clip1 = "Prompt: one" in str(body["messages"][1]["content"])
        oa = 1 if first_is_clip1 else 2
        return Reply(f"<Answer>TA={oa}, VQ={oa}, MQ={oa}, OA={oa}</Answer>")

    with ChatServer(consistent) as srv:
        ev = create_evaluator(
            "vrthinker", backend="openai", base_url=srv.base_url, model="vrt", image_side=32, both_orders=True
        )
        (r,) = ev.predict_pairs([(_video(clip_dir, 0, prompt="zero"), _video(clip_dir, 1, prompt="one"))])
    assert r.pred_scalar == -1.0 and r.parsed["orders_agree"] is True and r.uncertainty == 0.0
