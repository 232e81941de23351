"""The position-based click simulator: determinism, noise rate, position bias, grade effect."""
from __future__ import annotations

import numpy as np
import pytest

from ltrr.clicks import ClickEvent, ClickModel, top_grade

IDS = [f"i{n}" for n in range(10)]


def _ctr(model: ClickModel, ranked: list[str], qrels: dict[str, int], trials: int, seed: int = 1) -> np.ndarray:
    """Observed click rate per position over many simulated users."""
    rng = np.random.default_rng(seed)
    clicks = np.zeros(len(ranked))
    for _ in range(trials):
        for ev in model.simulate(ranked, qrels, rng=rng):
            if ev.type == "click":
                clicks[ev.position - 1] += 1
    return clicks / trials


def test_same_seed_same_clicks_and_different_seed_differs():
    qrels = {i: n % 4 for n, i in enumerate(IDS)}
    runs = [[ClickModel(seed=s).simulate(IDS, qrels) for _ in range(50)] for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert sum(len(r) for r in runs[0]) > 0
    # an explicit generator is honoured too
    a = ClickModel().simulate(IDS, qrels, rng=np.random.default_rng(9))
    b = ClickModel(seed=123).simulate(IDS, qrels, rng=np.random.default_rng(9))
    assert a == b


def test_irrelevant_items_clicked_at_noise_rate():
    model = ClickModel(eta=1.0, noise=0.05)
    ctr = _ctr(model, IDS[:1], {}, trials=20000)  # rank 1 is always examined
    assert abs(ctr[0] - 0.05) < 0.01


def test_click_through_decays_with_rank_for_equal_grades():
    model = ClickModel(eta=1.0, noise=0.05)
    qrels = {i: 2 for i in IDS}
    ctr = _ctr(model, IDS, qrels, trials=8000)
    assert ctr[0] > ctr[1] > ctr[3] > ctr[9]
    expected = np.array(model.expected_ctr(IDS, qrels))
    assert np.allclose(ctr, expected, atol=0.02)
    assert expected[0] == pytest.approx(model.click_probability(2))
    assert expected[4] == pytest.approx(model.click_probability(2) / 5)


def test_higher_grades_clicked_more():
    model = ClickModel()
    rates = [_ctr(model, ["x"], {"x": g}, trials=4000, seed=g)[0] for g in range(4)]
    assert rates[0] < rates[1] < rates[2] < rates[3]
    assert rates[3] == 1.0  # max grade, rank 1: examined and always clicked
    assert [model.click_probability(g) for g in range(4)] == pytest.approx([0.05, 0.05 + 0.95 / 7,
                                                                            0.05 + 0.95 * 3 / 7, 1.0])


def test_events_are_well_formed_and_plays_follow_clicks_of_good_items():
    model = ClickModel(eta=0.5, play_prob=1.0, seed=5)
    qrels = {"a": 3, "b": 1, "c": 0}
    events = [ev for _ in range(200) for ev in model.simulate(["a", "b", "c"], qrels)]
    assert all(isinstance(ev, ClickEvent) and ev.type in ("click", "play") for ev in events)
    assert all(ev.grade == qrels[ev.item_id] and ev.position == "abc".index(ev.item_id) + 1 for ev in events)
    plays = [ev for ev in events if ev.type == "play"]
    clicks_a = [ev for ev in events if ev.type == "click" and ev.item_id == "a"]
    assert plays and all(ev.item_id == "a" for ev in plays)  # grade 1 and 0 are never played
    assert len(plays) == len(clicks_a)  # play_prob=1: every click on a grade-3 item is played
    assert not ClickModel(play_prob=0.0).simulate(["a"], {"a": 3}, rng=np.random.default_rng(0))[1:]


def test_unknown_items_are_irrelevant_and_grades_are_clipped():
    model = ClickModel(noise=0.0)
    assert model.simulate(["zz"], {}, rng=np.random.default_rng(0)) == []
    assert model.click_probability(7) == 1.0 and model.click_probability(-1) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"eta": 0}, "eta"), ({"eta": -1.0}, "eta"), ({"eta": float("nan")}, "eta"),
    ({"noise": 1.0}, "noise"), ({"noise": -0.1}, "noise"), ({"max_grade": 0}, "max_grade"),
    ({"play_prob": 1.5}, "play_prob"), ({"seed": -1}, "seed"),
])
def test_invalid_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClickModel(**kwargs)


def test_invalid_inputs_raise():
    model = ClickModel()
    with pytest.raises(ValueError, match="more than once"):
        model.simulate(["a", "a"], {})
    with pytest.raises(TypeError, match="list of item ids"):
        model.simulate("abc", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="position"):
        model.examination_probability(0)
    with pytest.raises(TypeError, match="qrels"):
        model.simulate(["a"], [("a", 1)])  # type: ignore[arg-type]


def test_users_of_binary_labels_always_click_an_examined_relevant_item():
    """`top_grade` is the labels' scale: on binary qrels a relevant item is a perfect one, clicked
    whenever examined (position 1 is always examined), an irrelevant one at the noise rate; on a
    0-4 scale grade 4 is the top. Fails if binary labels were read on the default 0-3 scale
    (a relevant item clicked with probability 0.19)."""
    assert top_grade({"q": {"a": 1, "b": 0}}, {}) == 1 and top_grade({}) == 1
    assert top_grade({"q": {"a": 1}}, {"r": {"b": 4}}) == 4
    users = ClickModel(max_grade=top_grade({"q": {"a": 1}}))
    assert users.click_probability(1) == 1.0 and users.click_probability(0) == pytest.approx(0.05)
    ctr = _ctr(users, ["a", "b"], {"a": 1}, trials=400)
    assert ctr[0] == 1.0 and ctr[1] < 0.1
