"""Action tokenisation (OpenVLA's 256 bins on the last vocabulary ids), sampling helpers, un-normalisation."""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.errors import ConfigError
from rlvla_cli.models.action_tokenizer import ActionTokenizer
from rlvla_cli.models.base import SamplingParams
from rlvla_cli.models.normalization import NormStats, normalize_actions, select_stats, unnormalize_actions
from rlvla_cli.models.openvla_common import sample_bins, token_logprob_entropy


def test_token_ids_are_the_last_256_of_the_base_vocabulary():
    tok = ActionTokenizer(32000, 256)
    ids = tok.token_ids
    assert ids[0] == 31999 and ids[-1] == 31744 and ids.unique().numel() == 256
    # OpenVLA: token = vocab - digitize(x, linspace(-1, 1, 256)); -1 -> digitize 1 -> 31999; +1 -> 256 -> 31744
    assert tok.encode(torch.tensor([-1.0, 1.0, 5.0])).tolist() == [31999, 31744, 31744]
    # 0.0 sits in bin 127 (edges[127] = -0.00392 <= 0 < edges[128] = 0.00392) -> token 32000 - 128 = 31872
    assert tok.encode(torch.tensor([0.0])).item() == 31872


def test_round_trip_within_half_a_bin():
    tok = ActionTokenizer(1024, 256)
    x = torch.linspace(-1, 1, 1001)
    decoded = tok.decode(tok.encode(x))
    bin_width = 2 / 255
    # every value except the top edge decodes to the centre of its own bin
    assert (decoded[:-1] - x[:-1]).abs().max() <= bin_width / 2 + 1e-6
    # decode(encode(decode(t))) == decode(t): centres are fixed points
    tokens = tok.token_ids[:255]
    assert torch.equal(tok.encode(tok.decode(tokens)), tokens)
    # bins <-> tokens are inverse
    bins = torch.arange(256)
    assert torch.equal(tok.tokens_to_bins(tok.bins_to_tokens(bins)), bins)


def test_sampling_helpers():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3]]))
    assert sample_bins(logits, SamplingParams(do_sample=False)).item() == 1
    torch.manual_seed(0)
    draws = torch.stack([sample_bins(logits, SamplingParams(top_k=2)) for _ in range(200)])
    assert set(draws.flatten().tolist()) <= {1, 2}
    draws = torch.stack([sample_bins(logits, SamplingParams(top_p=0.5)) for _ in range(50)])
    assert set(draws.flatten().tolist()) == {1}
    logp, ent = token_logprob_entropy(logits, torch.tensor([2]), True)
    assert logp.item() == pytest.approx(torch.log(torch.tensor(0.3)).item(), abs=1e-6)
    # entropy = -(0.1 ln 0.1 + 0.6 ln 0.6 + 0.3 ln 0.3) = 0.897946
    assert ent.item() == pytest.approx(0.897946, abs=1e-5)


def test_sampling_params_from_rollout_config():
    from rlvla_cli.config.rollout import SamplingConfig

    cfg = SamplingConfig(temperature_train=1.2, temperature_eval=0.5, top_k=5)
    assert SamplingParams.for_mode(cfg, "train") == SamplingParams(True, 1.2, 5, 1.0)
    assert SamplingParams.for_mode(cfg, "eval").temperature == 0.5
    assert SamplingParams.for_mode(None, "eval").do_sample is False


def test_unnormalize_with_q01_q99_and_mask():
    stats = NormStats(torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0]), torch.tensor([True, False]))
    x = torch.tensor([[-1.0, -1.0], [0.0, 0.5], [1.0, 1.0]])
    # dim 0: (x + 1) / 2 * 4 - 2 -> -2, 0, 2; dim 1 (mask false) unchanged
    assert torch.equal(unnormalize_actions(x, stats), torch.tensor([[-2.0, -1.0], [0.0, 0.5], [2.0, 1.0]]))
    torch.testing.assert_close(normalize_actions(unnormalize_actions(x, stats), stats), x)


def test_select_stats_errors():
    stats = {"bridge_orig": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 7}}}
    assert select_stats(stats, None, 7, "s").q01.shape == (7,)  # one dataset: no key needed
    with pytest.raises(ConfigError, match="did you mean"):
        select_stats(stats, "bridge_orgi", 7, "s")
    with pytest.raises(ConfigError, match="action_dim"):
        select_stats(stats, "bridge_orig", 6, "s")


def test_bins_match_openvla_action_tokenizer():
    """openvla/openvla prismatic/vla/action_tokenizer.py, encoded with numpy as written there: tokens =
    vocab_size - digitize(clip(a, -1, 1), linspace(-1, 1, 256)) (bins 1..256 -> ids 31999..31744); decode =
    bin_centers[clip(vocab_size - id - 1, 0, 254)]. Values on and next to every edge included."""
    import numpy as np

    tok = ActionTokenizer(32000, 256)
    edges = np.linspace(-1, 1, 256)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1.3, 1.3, 50_000), edges, np.nextafter(edges, 2), np.nextafter(edges, -2)])
    x = x.astype(np.float32)
    expected = 32000 - np.digitize(np.clip(x, -1.0, 1.0), edges)
    assert np.array_equal(tok.encode(torch.from_numpy(x)).numpy(), expected)
    ids = np.arange(31744, 32000)
    centers = (edges[:-1] + edges[1:]) / 2.0
    decoded = centers[np.clip(32000 - ids - 1, a_min=0, a_max=centers.shape[0] - 1)]
    assert np.array_equal(tok.decode(torch.from_numpy(ids)).numpy(), decoded.astype(np.float32))


def test_unnormalize_matches_the_reference_formula():
    """RLinf / moojink ``_unnormalize_actions`` (BOUNDS_Q99): where(mask, 0.5 (x + 1) (q99 - q01 + 1e-8) + q01, x);
    the gripper (mask false) passes through."""
    import numpy as np

    q01 = np.array([-0.03, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0])
    q99 = np.array([0.03, 0.04, 0.04, 0.1, 0.1, 0.2, 1.0])
    mask = np.array([True] * 6 + [False])
    x = np.random.default_rng(1).uniform(-1, 1, (5, 7)).astype(np.float32)
    expected = np.where(mask, 0.5 * (x + 1) * (q99 - q01 + 1e-8) + q01, x)
    stats = NormStats(torch.tensor(q01, dtype=torch.float32), torch.tensor(q99, dtype=torch.float32),
                      torch.tensor(mask))
    np.testing.assert_allclose(unnormalize_actions(torch.from_numpy(x), stats).numpy(), expected, rtol=1e-6,
                               atol=1e-8)


def test_normalize_proprio_matches_the_reference_formula():
    """RLinf rlinf/models/embodiment/openvla_oft/openvla_utils.py ``normalize_proprio`` (moojink's, BOUNDS_Q99):
    clip(where(mask, 2 (x - q01) / (q99 - q01 + 1e-8) - 1, x), -1, 1)."""
    import numpy as np

    from rlvla_cli.models.normalization import normalize_proprio

    q01, q99, mask = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 0.5, 2.0]), np.array([True, True, False])
    x = np.array([[0.3, 0.7, 5.0], [-2.0, 0.1, -0.5]], dtype=np.float32)
    expected = np.clip(np.where(mask, 2 * (x - q01) / (q99 - q01 + 1e-8) - 1, x), -1, 1)
    proprio = [torch.tensor(q01, dtype=torch.float32), torch.tensor(q99, dtype=torch.float32), torch.tensor(mask)]
    stats = NormStats(torch.zeros(7), torch.ones(7), torch.ones(7, dtype=torch.bool), *proprio)
    np.testing.assert_allclose(normalize_proprio(torch.from_numpy(x), stats).numpy(), expected, rtol=1e-6, atol=1e-7)
