"""Level changes applied to test calls (shared by tools/calm-calls and tools/escalation-eval)."""

import numpy as np


def level_swing(x, sr, swing_db, seed, block_s=2.5, ramp_s=0.05):
    """Channel 0 of x (samples, or samples x channels) at a gain that jumps every block_s to
    a new value drawn uniformly within +-swing_db, with linear ramps of ramp_s: a crude
    automatic gain control, or a caller moving the handset. Clipped to full scale."""
    rng = np.random.default_rng(seed)
    n, block, ramp = len(x), int(block_s * sr), max(1, int(ramp_s * sr))
    env = np.repeat(rng.uniform(-swing_db, swing_db, n // block + 1), block)[:n]
    env = np.convolve(np.concatenate([np.full(ramp, env[0]), env]), np.ones(ramp) / ramp, mode="same")[ramp:ramp + n]
    y = np.array(x, dtype="float32", copy=True)
    ch = y if y.ndim == 1 else y[:, 0]
    ch *= (10 ** (env / 20)).astype("float32")
    np.clip(y, -1.0, 1.0, out=y)
    return y
