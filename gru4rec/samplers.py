"""The negative sampler: shared negatives per mini-batch, and their log-probabilities.

The sampler owns the sampling distribution (``P ~ count ** alpha``), so the losses that
correct for it (``logq``) ask it for the log-probabilities instead of rebuilding them.
"""

from __future__ import annotations

import numpy as np
import torch

from . import kernels

__all__ = ["NegativeSampler"]


class NegativeSampler:
    """Draws the negatives shared by a mini-batch, with replacement.

    ``P(item) ~ count(item) ** alpha`` (``alpha = 0``: uniform over the
    catalogue). Draws are made on the device in large chunks from a dedicated
    generator, so sampling never touches the global random state and costs no
    host work per step.

    Parameters
    ----------
    item_counts : np.ndarray
        Training event count of every item.
    alpha : float
        Popularity exponent.
    n_samples : int
        Negatives per step.
    generator : torch.Generator
        Generator on ``device``.
    device : torch.device
    buffer_size : int, default=2**22
        Approximate number of items drawn at once. With ``compiled``, the sorted draws also
        keep a float64 scratch of that size between refills.
    dedup : bool, default=False
        Also prepare each step's distinct items with their multiplicities
        (:meth:`draw_unique`). The boundaries between steps are read back to the
        host once per refill, so this is meant for the CPU.
    compiled : bool, default=False
        Refill with :mod:`gru4rec.kernels` (CPU only): the same draws as the torch code, bit
        for bit, in one compiled pass. :func:`gru4rec.step.build_sampler` decides it.
    """

    def __init__(
        self,
        item_counts: np.ndarray,
        alpha: float,
        n_samples: int,
        generator: torch.Generator,
        device: torch.device,
        buffer_size: int = 2**22,
        dedup: bool = False,
        compiled: bool = False,
    ) -> None:
        self.n_samples = int(n_samples)
        self.dedup = bool(dedup)
        self.compiled = bool(compiled)
        self.n_items = len(item_counts)
        self.generator = generator
        self.device = torch.device(device)
        self.alpha = float(alpha)
        self._counts = np.asarray(item_counts)
        self._log_counts: torch.Tensor | None = None
        self._uniform = alpha == 0
        if not self._uniform:
            weights = np.power(np.asarray(item_counts, dtype=np.float64), alpha)
            if weights.sum() <= 0:
                raise ValueError("sample_alpha > 0 needs at least one item with events")
            cdf = np.cumsum(weights)
            cdf /= cdf[-1]
            self._cdf = torch.as_tensor(cdf, device=self.device)
        self._rows = max(1, buffer_size // max(1, self.n_samples))
        self._buffer: torch.Tensor | None = None
        # The compiled refill's scratch and search table, made on its first use.
        self._spacings: torch.Tensor | None = None
        self._table: tuple[np.ndarray, np.ndarray] | None = None
        self._next = 0
        self._arrays_of: torch.Tensor | None = None
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def log_probabilities(
        self, targets: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        """Log-probability (up to a constant) of each scored column being sampled.

        The in-batch targets are drawn by the data, so ``P ~ count``; the negatives by
        this sampler, so ``P ~ count ** alpha``. Items without events count once.
        Columns: ``targets``, then ``negatives``.
        """
        log_counts = self.log_counts()
        parts = [log_counts[targets]]
        if negatives is not None:
            parts.append(log_counts[negatives] * self.alpha)
        return torch.cat(parts)

    def log_counts(self) -> torch.Tensor:
        """``log(count)`` of every item (float32, on the device; items without events count
        once): the log-probabilities of :meth:`log_probabilities` before the exponent."""
        if self._log_counts is None:
            log_counts = np.log(np.maximum(self._counts, 1))
            self._log_counts = torch.as_tensor(log_counts, dtype=torch.float32, device=self.device)
        return self._log_counts

    def _exponentials(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` (float64) with standard exponential draws.

        On the CPU, NumPy's ziggurat (about 4x faster than torch's ``exponential_``), seeded
        by one draw from the generator: the stream still follows the generator's state.
        """
        if out.device.type != "cpu":
            return out.exponential_(generator=self.generator)
        seed = int(torch.randint(2**62, (1,), generator=self.generator))
        np.random.Generator(np.random.PCG64(seed)).standard_exponential(out=out.numpy())
        return out

    def _sorted_uniforms(self, rows: int, n: int) -> torch.Tensor:
        # Cumulative sums of n + 1 exponentials, normalised, are the order statistics
        # of n uniforms: each step's draws come out sorted at no extra cost. A step's
        # negatives are an unordered set, so this is exact; sorted draws make the
        # inverse-CDF search cache-friendly and repeated items adjacent.
        spacings = torch.empty(rows, n + 1, dtype=torch.float64, device=self.device)
        cum = self._exponentials(spacings).cumsum_(dim=1)
        return cum[:, :n] / cum[:, n:]

    def _refill(self) -> None:
        rows, n = self._rows, self.n_samples
        self._next = 0
        if self._uniform and not self.dedup:
            self._buffer = torch.randint(
                self.n_items, (rows, n), generator=self.generator, device=self.device
            )
            return
        if self.compiled:
            self._refill_compiled()
            return
        u = self._sorted_uniforms(rows, n)
        if self._uniform:
            self._buffer = (u * self.n_items).long().clamp_(max=self.n_items - 1)
        else:
            self._buffer = torch.searchsorted(self._cdf, u, right=True).clamp_(max=self.n_items - 1)
        if self.dedup:
            self._compact()

    def _refill_compiled(self) -> None:
        """:meth:`_refill` and :meth:`_compact` in one compiled pass over the same random
        spacings: the same buffers, bit for bit (the tests compare both)."""
        rows, n = self._rows, self.n_samples
        if self._spacings is None:
            # Scratch kept between refills (nothing outside sees it).
            self._spacings = torch.empty(rows, n + 1, dtype=torch.float64)
            if not self._uniform:
                self._table = kernels.inverse_cdf_table(self._cdf.numpy())
        spacings = self._exponentials(self._spacings).numpy()
        # The buffers handed out are fresh each refill. NumPy allocates them (torch shares
        # the memory) because it asks Linux for huge pages: first writes to a fresh buffer
        # from torch's allocator fault every 4 KiB (measured: 10 us per row of 2048 draws
        # against 3 us, next to ~20 us for the compiled pass itself).
        draws = np.empty((rows, n), np.int64)
        self._buffer = torch.from_numpy(draws)
        if not self.dedup:
            kernels.sorted_draws(spacings, self._table, self.n_items, draws)
            return
        # Room for every draw to be its own run; pages never written are never touched.
        unique = np.empty(rows * n, np.int64)
        mult = np.empty(rows * n, np.float32)
        self._bounds = np.empty(rows + 1, np.int64)
        k = kernels.sorted_draws(
            spacings, self._table, self.n_items, draws, (unique, mult, self._bounds)
        )
        self._unique = torch.from_numpy(unique[:k])
        # torch's log, as in _compact: the same float32 results.
        self._log_mult = torch.from_numpy(mult[:k]).log_()

    def _compact(self) -> None:
        """Distinct items and their multiplicities of every buffered step, flattened."""
        rows, n = self._rows, self.n_samples
        flat = self._buffer.reshape(-1)
        first = torch.ones_like(flat, dtype=torch.bool)
        first[1:] = flat[1:] != flat[:-1]
        first[::n] = True  # a step's first draw starts a run even if it equals the last one
        starts = first.nonzero().squeeze(1)
        ends = torch.cat([starts[1:], starts.new_tensor([flat.numel()])])
        self._unique = flat[starts]
        self._log_mult = (ends - starts).to(torch.float32).log_()
        # Host copy of the step boundaries: slicing needs Python ints (one read per refill).
        bounds = torch.searchsorted(starts, torch.arange(rows + 1, device=self.device) * n)
        self._bounds = bounds.cpu().numpy()

    def draw(self) -> torch.Tensor:
        """The next step's ``n_samples`` negatives (int64, on the device)."""
        if self._buffer is None or self._next >= self._rows:
            self._refill()
        out = self._buffer[self._next]
        self._next += 1
        return out

    def _next_run(self) -> tuple[int, int, int]:
        """The next step's ``(row, start, stop)``: its buffer row and its span of the
        distinct items (``start == stop == -1``: few repeats, take the raw draws)."""
        if not self.dedup:
            raise RuntimeError("draw_unique() needs a sampler built with dedup=True")
        if self._buffer is None or self._next >= self._rows:
            self._refill()
        row = self._next
        a, b = int(self._bounds[row]), int(self._bounds[row + 1])
        self._next += 1
        if b - a > 0.9 * self.n_samples:
            # Few repeats: scoring the raw draws as plain columns is cheaper than the
            # weighted losses (and exactly the same loss).
            return row, -1, -1
        return row, a, b

    def draw_unique_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`draw_unique` as NumPy views (CPU only: the compiled step's per-step
        slicing, without the cost of a tensor slice)."""
        row, a, b = self._next_run()
        if self._arrays_of is not self._buffer:  # views of this refill's buffers
            self._arrays = (self._buffer.numpy(), self._unique.numpy(), self._log_mult.numpy())
            self._arrays_of = self._buffer
        if a < 0:
            return self._arrays[0][row], None
        return self._arrays[1][a:b], self._arrays[2][a:b]

    def draw_unique(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next step's negatives as distinct items and the log of their multiplicities.

        When fewer than 10% of the draws repeat, the raw draws come back instead,
        with None for the multiplicities.

        Scoring each distinct item once, with ``log(multiplicity)`` added to its
        logit, gives exactly the softmax over the duplicated draws at a fraction
        of the cost. Needs ``dedup=True``.
        """
        row, a, b = self._next_run()
        if a < 0:
            return self._buffer[row], None
        return self._unique[a:b], self._log_mult[a:b]
