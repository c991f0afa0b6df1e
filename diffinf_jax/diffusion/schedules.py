"""Noise schedules and timestep respacing (as upstream DiffAE / ADM).

Schedules are computed in float64 numpy and cast to float32 when gathered,
like upstream's `_extract_into_tensor`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def linear_betas(num_timesteps: int = 1000) -> np.ndarray:
  """Linear betas from 1e-4 to 0.02 (scaled to 1000 steps), float64."""
  scale = 1000.0 / num_timesteps
  return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps,
                     dtype=np.float64)


def space_timesteps(num_timesteps: int, num_steps: int) -> np.ndarray:
  """Upstream's "ddimN": the smallest stride k with len(range(0, T, k)) == N.

  Returns the kept original timesteps 0, k, 2k, ... (999 is never kept
  unless N == T).

  Raises:
    ValueError: no stride gives exactly N steps.
  """
  for stride in range(1, num_timesteps + 1):
    kept = np.arange(0, num_timesteps, stride)
    if len(kept) == num_steps:
      return kept.astype(np.int64)
  raise ValueError(f"cannot create exactly {num_steps} DDIM steps out of "
                   f"{num_timesteps} with an integer stride")


@dataclasses.dataclass(frozen=True)
class SpacedSchedule:
  """A respaced process: alpha-bar at the kept steps and their neighbours.

  Attributes:
    timestep_map: [N] original timesteps fed to the network.
    alphas_cumprod, alphas_cumprod_prev, alphas_cumprod_next: [N] float64;
      prev[0] = 1, next[N-1] = 0.
    betas: [N] respaced betas 1 - abar_i / abar_{i-1}.
  """
  timestep_map: np.ndarray
  alphas_cumprod: np.ndarray
  alphas_cumprod_prev: np.ndarray
  alphas_cumprod_next: np.ndarray
  betas: np.ndarray


def spaced_schedule(num_steps: int, num_timesteps: int = 1000
                    ) -> SpacedSchedule:
  base = np.cumprod(1.0 - linear_betas(num_timesteps))
  kept = space_timesteps(num_timesteps, num_steps)
  abar = base[kept]
  prev = np.concatenate([[1.0], abar[:-1]])
  nxt = np.concatenate([abar[1:], [0.0]])
  return SpacedSchedule(kept, abar, prev, nxt, 1.0 - abar / prev)


def partial_timesteps(num_steps: int, t_max: int,
                      num_timesteps: int = 1000) -> np.ndarray:
  """The grid tau_k = round(k t_max / N), k = 0..N, of a partial inversion.

  Raises:
    ValueError: t_max outside [N, T - 1] (the grid would repeat a timestep
      or leave the process).
  """
  if num_steps < 1:
    raise ValueError(f"DDIM steps {num_steps}: must be >= 1")
  if not num_steps <= t_max <= num_timesteps - 1:
    raise ValueError(
        f"config diffae.t_max={t_max}: must lie in [{num_steps}, "
        f"{num_timesteps - 1}] for {num_steps} DDIM steps (or be unset for "
        "the full schedule)")
  return np.round(np.linspace(0, t_max, num_steps + 1)).astype(np.int64)
