"""The fit result: posterior draws as ArviZ InferenceData and the questions users ask of them.

This is the one module that imports ArviZ. Times follow DESIGN §2:
``t_ref = drift * p + shift_ms + row * time_per_row_ms`` with ``p`` the (snapped) frame time.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its 1.0 refactor on import
    import arviz as az

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.timing import FrameClock, frame_table, locate, snap_frame_times

CAMERA_VARIABLES = ("drift", "shift_ms", "total_rows", "time_per_row_ms", "readout_fraction", "sigma_ms")
#: The flashes pin a camera's time per row when its readout fraction's posterior sd is at most
#: this share of the prior's (the data, not the prior, then set it).
IDENTIFIED_SD_RATIO = 0.1
#: Warn when a split R-hat exceeds this ...
RHAT_LIMIT = 1.01
#: ... or the bulk ESS is below this many draws per chain.
ESS_PER_CHAIN = 100
#: Largest number of (draw, point) products held in memory at once by :meth:`SyncResult.time`.
CHUNK_ELEMENTS = 1 << 22


class SyncResult:
    """Posterior of a synchronization and the synchronized time of any (camera, frame time, row).

    Attributes:
        idata: ``arviz.InferenceData`` with groups posterior (``drift``, ``shift_ms``,
            ``total_rows``, ``time_per_row_ms``, ``sigma_ms`` over ``camera``; ``flash_time_ms``
            over ``flash``), sample_stats, observed_data (``row``), constant_data and
            log_likelihood (``row``).
        metadata: JSON-able dict (cameras, paths, reference, method, frame clocks, heights,
            frame periods, known total rows, flash count, residual RMS).
    """

    def __init__(self, idata: az.InferenceData, metadata: Mapping):
        self.idata = idata
        self.metadata = dict(metadata)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_fit(cls, *, problem, method, posterior, sample_stats, log_likelihood, heights, priors) -> SyncResult:
        """Result of :func:`flashsync_bayes.model.fit` from draws ``(chain, draw, ...)`` and its problem."""
        cameras = list(problem.cameras)
        chains, draws = posterior["drift"].shape[:2]
        coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
        post = xr.Dataset(
            {
                name: (("chain", "draw", "camera"), np.asarray(posterior[name], dtype=np.float64))
                for name in CAMERA_VARIABLES
            }
            | {"flash_time_ms": (("chain", "draw", "flash"), np.asarray(posterior["flash_time_ms"], dtype=np.float64))},
            coords=coords | {"camera": cameras, "flash": np.asarray(problem.flash_ids)},
        )
        stats = xr.Dataset(
            {name: (("chain", "draw"), np.asarray(value)) for name, value in sample_stats.items()}, coords=coords
        )
        event = np.arange(problem.row.size)
        loglik = xr.Dataset(
            {"row": (("chain", "draw", "event"), np.asarray(log_likelihood))}, coords=coords | {"event": event}
        )
        observed = xr.Dataset({"row": ("event", problem.row)}, coords={"event": event})
        constant = xr.Dataset(
            {
                "frame_time_ms": ("event", problem.frame_time_ms),
                "row_sd": ("event", problem.row_sd),
                "event_camera": ("event", np.asarray([cameras[c] for c in problem.event_camera], dtype=str)),
                "flash": ("event", np.asarray(problem.flash_ids)[problem.event_flash]),
                "event_index": ("event", np.asarray(problem.event_index)),
            },
            coords={"event": event},
        )
        metadata = {
            "cameras": cameras,
            "paths": list(problem.paths),
            "reference": cameras[problem.reference],
            "method": method,
            "frame_clocks": {
                c: (None if k is None else [float(v) for v in k]) for c, k in zip(cameras, problem.frame_clocks)
            },
            "heights": [int(h) for h in heights],
            "frame_period_ms": [float(t) for t in problem.frame_period_ms],
            "fixed_total_rows": [None if not np.isfinite(v) else float(v) for v in problem.fixed_total_rows],
            "facts": list(problem.facts),
            "readout_prior": [float(v) for v in priors.readout_fraction],
            "n_flashes": int(problem.flash_ids.size),
        }
        idata = az.InferenceData(
            posterior=post,
            sample_stats=stats,
            log_likelihood=loglik,
            observed_data=observed,
            constant_data=constant,
        )
        result = cls(idata, metadata)
        result.metadata["residual_rms_ms"] = float(np.sqrt(np.mean(result.event_residuals()["residual_ms"].values ** 2)))
        return result

    def event_residuals(self) -> xr.Dataset:
        """Per fitted edge: camera, flash, its reference time (posterior mean, ms) and residual to its flash (ms)."""
        mean = self.idata.posterior.mean(("chain", "draw"))
        data = self.idata.constant_data
        camera = np.array([self.cameras.index(c) for c in data["event_camera"].values], dtype=int)
        mapped = (
            mean["drift"].values[camera] * data["frame_time_ms"].values
            + mean["shift_ms"].values[camera]
            + mean["time_per_row_ms"].values[camera] * self.idata.observed_data["row"].values
        )
        flash = mean["flash_time_ms"].sel(flash=data["flash"].values).values
        return xr.Dataset(
            {
                "event_camera": ("event", data["event_camera"].values),
                "flash": ("event", data["flash"].values),
                "reference_time_ms": ("event", mapped),
                "residual_ms": ("event", mapped - flash),
            }
        )

    # -- basic facts ----------------------------------------------------------------------------

    @property
    def cameras(self) -> list[str]:
        """Camera labels in fit order."""
        return list(self.metadata["cameras"])

    @property
    def reference(self) -> str:
        """Label of the reference camera."""
        return self.metadata["reference"]

    @property
    def method(self) -> str:
        """Inference method: "bayes", "laplace" or "lsq"."""
        return self.metadata["method"]

    @property
    def frame_clocks(self) -> dict[str, FrameClock | None]:
        """Per camera the frame clock used to snap frame times, or None."""
        return {c: (None if v is None else FrameClock(*v)) for c, v in self.metadata["frame_clocks"].items()}

    @property
    def n_flashes(self) -> int:
        """Number of flashes used in the fit."""
        return int(self.metadata["n_flashes"])

    @property
    def residual_rms_ms(self) -> float:
        """RMS (ms) of mapped edge times minus flash times at the posterior mean."""
        return float(self.metadata["residual_rms_ms"])

    def _index(self, camera) -> int:
        """Index of a camera given by label or path."""
        key = str(camera)
        if key in self.metadata["cameras"]:
            return self.metadata["cameras"].index(key)
        if key in self.metadata["paths"]:
            return self.metadata["paths"].index(key)
        raise FlashsyncError(f"unknown camera '{camera}'; cameras are {self.cameras}")

    def _draws(self, name: str, index: int) -> np.ndarray:
        """Posterior draws ``(n_draws,)`` of a per-camera variable, chains stacked."""
        return self.idata.posterior[name].values[:, :, index].reshape(-1)

    # -- questions ------------------------------------------------------------------------------

    def _readout_ms(self) -> xr.DataArray:
        """Posterior draws of the readout time ``R * T / L`` (camera ms) over (chain, draw, camera)."""
        period = xr.DataArray(np.asarray(self.metadata["frame_period_ms"]), dims="camera", coords={"camera": self.cameras})
        return self.idata.posterior["readout_fraction"] * period

    def parameters(self) -> xr.Dataset:
        """Dataset over camera: mean and ``*_sd`` of drift, shift_ms, time_per_row_ms, total_rows, readout_ms, sigma_ms."""
        post = self.idata.posterior.assign(readout_ms=self._readout_ms())
        out = {}
        for name in ("drift", "shift_ms", "time_per_row_ms", "total_rows", "readout_ms", "sigma_ms"):
            out[name] = post[name].mean(("chain", "draw"))
            out[f"{name}_sd"] = post[name].std(("chain", "draw"))
        out["frame_period_ms"] = xr.DataArray(np.asarray(self.metadata["frame_period_ms"]), dims="camera")
        ds = xr.Dataset(out).assign_coords(camera=self.cameras)
        ds.attrs.update(reference=self.reference, method=self.method)
        return ds

    def time_draws(self, camera, frame_time_ms, row) -> np.ndarray:
        """Posterior draws of the reference time (ms), shape ``(n_draws,) + broadcast(frame_time_ms, row).shape``.

        Frame times are snapped to the camera's frame clock when it has one (idempotent).
        """
        c = self._index(camera)
        p, r = np.broadcast_arrays(self._snap(c, frame_time_ms), np.asarray(row, dtype=np.float64))
        d, s, a = (self._draws(n, c)[:, None] for n in ("drift", "shift_ms", "time_per_row_ms"))
        return (d * p.reshape(-1) + s + a * r.reshape(-1)).reshape((d.shape[0],) + p.shape)

    def time(self, camera, frame_time_ms, row) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd (ms) of the reference time of (frame time, row) points, broadcast shape."""
        c = self._index(camera)
        p, r = np.broadcast_arrays(self._snap(c, frame_time_ms), np.asarray(row, dtype=np.float64))
        d, s, a = (self._draws(n, c) for n in ("drift", "shift_ms", "time_per_row_ms"))
        dm, sm, am = d.mean(), s.mean(), a.mean()
        flat_p, flat_r = p.reshape(-1), r.reshape(-1)
        mean = dm * flat_p + sm + am * flat_r
        sd = np.empty_like(mean)
        step = max(1, CHUNK_ELEMENTS // max(d.size, 1))
        for start in range(0, flat_p.size, step):
            sl = slice(start, start + step)
            dev = (d - dm)[:, None] * flat_p[sl] + (s - sm)[:, None] + (a - am)[:, None] * flat_r[sl]
            sd[sl] = np.sqrt(np.mean(dev**2, axis=0))
        return mean.reshape(p.shape), sd.reshape(p.shape)

    def _snap(self, index: int, frame_time_ms) -> np.ndarray:
        """Frame times of camera ``index`` snapped to its frame clock (if any), float64."""
        clock = self.frame_clocks[self.metadata["cameras"][index]]
        return snap_frame_times(np.asarray(frame_time_ms, dtype=np.float64), clock)

    def _mean(self, index: int) -> tuple[float, float, float]:
        """Posterior mean drift, shift_ms and time_per_row_ms of one camera."""
        return tuple(float(self._draws(n, index).mean()) for n in ("drift", "shift_ms", "time_per_row_ms"))

    def locate(self, camera, reference_time_ms, frame_times_ms) -> tuple[np.ndarray, np.ndarray]:
        """Frame index (-1 before the first frame) and fractional row of reference times in a camera, input shape.

        ``frame_times_ms`` are that camera's frame times (pts, sorted); posterior mean parameters.
        """
        c = self._index(camera)
        return locate(reference_time_ms, self._snap(c, frame_times_ms), *self._mean(c))

    def frame_middle_ms(self, camera, frame_times_ms) -> np.ndarray:
        """Reference time (ms) of the middle stored row ``(height - 1) / 2`` of each frame, shape of input."""
        c = self._index(camera)
        drift, shift, tpr = self._mean(c)
        middle = 0.5 * (self.metadata["heights"][c] - 1)
        return drift * self._snap(c, frame_times_ms) + shift + middle * tpr

    def frame_table(self, frame_times_ms: Mapping[str, np.ndarray]) -> xr.Dataset:
        """Synchronized frame table: for each reference frame, each camera's nearest frame and time difference.

        ``frame_times_ms`` maps cameras (label or path; the reference is required) to their frame
        times (pts, ms). Frames are compared by their middle-row reference times; a camera's frame
        counts within half of its frame period. Returns a Dataset over ``(frame, camera)`` with
        ``frame_index`` (-1 none), ``difference_ms`` (camera minus reference, NaN none) and
        ``reference_time_ms`` over ``frame``.
        """
        given = {self.cameras[self._index(c)]: np.asarray(v, dtype=np.float64) for c, v in frame_times_ms.items()}
        if self.reference not in given:
            raise FlashsyncError(f"frame_table needs the frame times of the reference camera '{self.reference}'")
        labels = [c for c in self.cameras if c in given]
        reference_ms = self.frame_middle_ms(self.reference, given[self.reference])
        camera_ms = {c: self.frame_middle_ms(c, given[c]) for c in labels}
        period = {
            c: self._mean(self._index(c))[0] * self.metadata["frame_period_ms"][self._index(c)] for c in labels
        }
        table = frame_table(reference_ms, camera_ms, period)
        return xr.Dataset(
            {
                "frame_index": (("frame", "camera"), np.stack([table[c][0] for c in labels], axis=1)),
                "difference_ms": (("frame", "camera"), np.stack([table[c][1] for c in labels], axis=1)),
                "reference_time_ms": ("frame", reference_ms),
            },
            coords={"frame": np.arange(reference_ms.size), "camera": labels},
            attrs={"reference": self.reference, "frame_time": "middle stored row"},
        )

    # -- identifiability -----------------------------------------------------------------------

    def identifiability(self) -> dict[str, dict]:
        """Per camera whether the data pin its time per row, and why.

        A camera is pinned by a given fact (total rows, readout time) or when the posterior sd of
        its readout fraction ``R / L`` is at most :data:`IDENTIFIED_SD_RATIO` of the prior's. With
        one frame rate and locked frame phases the flash edges cannot separate a common time per
        row from shift and drift (DESIGN §5); the posterior then keeps the prior's width, and
        the time of rows far from the flash edges is uncertain by up to ``readout_ms_sd``.

        Returns ``{camera: {"time_per_row_identified", "reason", "readout_ms", "readout_ms_sd",
        "posterior_prior_sd_ratio"}}``.
        """
        alpha, beta = self.metadata["readout_prior"]
        prior_sd = float(np.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1.0))))
        readout = self._readout_ms()
        mean, sd = readout.mean(("chain", "draw")), readout.std(("chain", "draw"))
        fraction_sd = self.idata.posterior["readout_fraction"].std(("chain", "draw"))
        out = {}
        for i, camera in enumerate(self.cameras):
            fact = self.metadata["facts"][i]
            ratio = float(fraction_sd.sel(camera=camera)) / prior_sd
            spread_ms = float(sd.sel(camera=camera))
            if fact is not None:
                identified, reason = True, f"{fact} given"
            elif ratio <= IDENTIFIED_SD_RATIO:
                identified, reason = True, f"pinned by the flashes: readout known to ±{spread_ms:.3f} ms"
            else:
                identified = False
                reason = (
                    f"not pinned by the flashes: readout ±{spread_ms:.2f} ms, {100 * ratio:.0f} % of the prior's width"
                )
            out[camera] = {
                "time_per_row_identified": identified,
                "reason": reason,
                "readout_ms": float(mean.sel(camera=camera)),
                "readout_ms_sd": spread_ms,
                "posterior_prior_sd_ratio": ratio,
            }
        return out

    @property
    def time_per_row_identified(self) -> dict[str, bool]:
        """Per camera whether its time per row is pinned (see :meth:`identifiability`)."""
        return {camera: v["time_per_row_identified"] for camera, v in self.identifiability().items()}

    # -- diagnostics ----------------------------------------------------------------------------

    def diagnostics(self) -> dict:
        """Max split R-hat and min bulk ESS of the camera parameters, and divergences, of NUTS draws; warns on problems.

        Returns a dict ``r_hat_max``, ``ess_bulk_min``, ``divergences``, ``chains``; R-hat and ESS
        are NaN for lsq/laplace (independent draws). One chain is split in halves for R-hat.
        """
        stats = self.idata.sample_stats
        divergences = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
        chains = int(self.idata.posterior.sizes["chain"])
        out = {"r_hat_max": float("nan"), "ess_bulk_min": float("nan"), "divergences": divergences, "chains": chains}
        if self.method != "bayes":
            return out
        post = self.idata.posterior
        varying = {}
        # the camera parameters; flash times are nuisance parameters (their max R-hat over
        # hundreds of flashes would mostly measure Monte Carlo noise of a single chain)
        for name in ("drift", "shift_ms", "time_per_row_ms", "readout_fraction"):
            spread = post[name].std(("chain", "draw")).values
            scale = np.abs(post[name].mean(("chain", "draw")).values)
            keep = spread > 1e-12 * np.maximum(scale, 1.0)
            if keep.any():
                dim = "camera"
                picked = post[name].isel({dim: np.flatnonzero(keep)}).drop_vars(dim)
                varying[name] = picked.rename({dim: f"{name}_entry"})
        data = xr.Dataset(varying)
        if chains == 1:
            # one chain: compare its halves (split R-hat needs at least two chains in ArviZ)
            half = data.sizes["draw"] // 2
            second = data.isel(draw=slice(half, 2 * half)).assign_coords(draw=np.arange(half))
            data = xr.concat([data.isel(draw=slice(0, half)), second], dim="chain").assign_coords(chain=[0, 1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rhat = az.rhat(data)
            ess = az.ess(data, method="bulk")
        rhat_values = np.concatenate([np.ravel(rhat[v].values) for v in rhat.data_vars]) if varying else np.array([])
        ess_values = np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars]) if varying else np.array([])
        if np.isfinite(rhat_values).any():
            out["r_hat_max"] = float(np.nanmax(rhat_values))
        if np.isfinite(ess_values).any():
            out["ess_bulk_min"] = float(np.nanmin(ess_values))
        problems = []
        if out["r_hat_max"] > RHAT_LIMIT:
            problems.append(f"R-hat {out['r_hat_max']:.3f} > {RHAT_LIMIT}")
        if out["ess_bulk_min"] < ESS_PER_CHAIN * chains:
            problems.append(f"bulk ESS {out['ess_bulk_min']:.0f} < {ESS_PER_CHAIN * chains}")
        if divergences > 0:
            problems.append(f"{divergences} divergent transitions")
        if problems:
            warnings.warn(
                "NUTS diagnostics: " + "; ".join(problems) + " — run more warmup/samples or chains",
                stacklevel=2,
            )
        return out

    # -- output ---------------------------------------------------------------------------------

    def to_json(self, paths: Mapping[str, str] | Sequence[str] | None = None) -> dict:
        """The DESIGN §6 JSON dict (plain types); camera keys are the paths as given.

        ``paths`` maps camera labels to paths, or lists them in camera order; default: the events' paths.
        """
        if paths is None:
            names = list(self.metadata["paths"])
        elif isinstance(paths, Mapping):
            names = [str(paths.get(c, paths.get(p, p))) for c, p in zip(self.cameras, self.metadata["paths"])]
        else:
            names = [str(p) for p in paths]
            if len(names) != len(self.cameras):
                raise FlashsyncError(f"to_json needs {len(self.cameras)} paths, got {len(names)}")
        params = self.parameters()
        identifiability = self.identifiability()
        cameras = {}
        for i, (camera, name) in enumerate(zip(self.cameras, names)):
            clock = self.frame_clocks[camera]
            values = params.sel(camera=camera)
            pinned = identifiability[camera]
            cameras[name] = {
                "drift": float(values["drift"]),
                "drift_sd": float(values["drift_sd"]),
                "shift_ms": float(values["shift_ms"]),
                "shift_ms_sd": float(values["shift_ms_sd"]),
                "time_per_row_ms": float(values["time_per_row_ms"]),
                "time_per_row_ms_sd": float(values["time_per_row_ms_sd"]),
                "total_rows": float(values["total_rows"]),
                "total_rows_sd": float(values["total_rows_sd"]),
                "frame_period_ms": float(self.metadata["frame_period_ms"][i]),
                "frame_clock": None
                if clock is None
                else {
                    "period_ms": float(clock.period_ms),
                    "origin_ms": float(clock.origin_ms),
                    "period_sd_ms": float(clock.period_sd_ms),
                    "centre_tick": float(clock.centre_tick),
                    "centre_sd_ms": float(clock.centre_sd_ms),
                },
                "time_per_row_identified": bool(pinned["time_per_row_identified"]),
                "time_per_row_reason": pinned["reason"],
                "readout_ms": float(values["readout_ms"]),
                "readout_ms_sd": float(values["readout_ms_sd"]),
            }
        return {
            "reference": names[self.cameras.index(self.reference)],
            "method": self.method,
            "cameras": cameras,
            "n_flashes": self.n_flashes,
            "residual_rms_ms": self.residual_rms_ms,
        }

    def save(self, path) -> None:
        """Write the InferenceData and metadata to a netCDF file atomically."""
        idata = az.InferenceData(
            attrs={"flashsync": json.dumps(self.metadata)},
            **{group: getattr(self.idata, group) for group in self.idata.groups()},
        )
        atomic_write(path, lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def load(cls, path) -> SyncResult:
        """Result written by :meth:`save`."""
        if not os.path.exists(path):
            raise FlashsyncError(f"result file not found: {path}")
        try:
            with az.rc_context({"data.load": "eager"}):
                idata = az.from_netcdf(os.fspath(path))
            metadata = json.loads(idata.attrs["flashsync"])
        except (OSError, ValueError, KeyError) as error:
            raise FlashsyncError(f"cannot read sync result {path}: {error}") from error
        groups = {}
        for group in idata.groups():
            ds = getattr(idata, group)
            if "camera" in ds.coords:
                ds = ds.assign_coords(camera=ds["camera"].values.astype(str))
            if "event_camera" in ds:
                ds["event_camera"] = ds["event_camera"].astype(str)
            groups[group] = ds
        return cls(az.InferenceData(**groups), metadata)

    def __repr__(self) -> str:
        params = self.parameters()
        lines = [f"SyncResult(method={self.method}, reference={self.reference}, flashes={self.n_flashes})"]
        for camera in self.cameras:
            v = params.sel(camera=camera)
            lines.append(
                f"  {camera}: shift {float(v['shift_ms']):.3f}±{float(v['shift_ms_sd']):.3f} ms, "
                f"drift {(float(v['drift']) - 1) * 1e6:+.2f}±{float(v['drift_sd']) * 1e6:.2f} ppm, "
                f"rows {float(v['total_rows']):.1f}±{float(v['total_rows_sd']):.1f}, "
                f"{float(v['time_per_row_ms']) * 1e3:.3f}±{float(v['time_per_row_ms_sd']) * 1e3:.3f} µs/row"
            )
        return "\n".join(lines)
