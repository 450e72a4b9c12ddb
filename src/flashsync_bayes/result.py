"""The fit result: posterior draws as InferenceData plus metadata, and the questions users ask of them.

Times follow DESIGN §2 through :mod:`flashsync_bayes.timing`; ArviZ is used only through
:mod:`flashsync_bayes.idata`, diagnostics come from :mod:`flashsync_bayes.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from flashsync_bayes.diagnostics import Diagnostics, diagnostics
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_position, event_camera_indices
from flashsync_bayes.idata import InferenceData, inference_data, load_idata, save_idata
from flashsync_bayes.inference import NUTS, Posterior
from flashsync_bayes.inference.problem import beta_moments
from flashsync_bayes.timing import FrameClock, frame_table, locate, reference_time_ms, snap_frame_times

#: The flashes pin a camera's time per row when its readout fraction's posterior sd is at most
#: this share of the prior's (the data, not the prior, then set it).
IDENTIFIED_SD_RATIO = 0.1
#: Largest number of (draw, point) products held in memory at once by :meth:`SyncResult.time`.
CHUNK_ELEMENTS = 1 << 22
#: Variables of :meth:`SyncResult.parameters` (mean and ``*_sd``) and of the JSON per camera.
PARAMETERS = ("drift", "shift_ms", "time_per_row_ms", "total_rows", "readout_ms", "sigma_ms")
#: Fields of a frame clock in the JSON, in order.
CLOCK_FIELDS = ("period_ms", "origin_ms", "period_sd_ms", "centre_tick", "centre_sd_ms")


def _metadata(posterior: Posterior) -> dict:
    """JSON-able metadata of a fit (the residual RMS is added once the result exists)."""
    problem = posterior.problem
    cameras = list(problem.cameras)
    return {
        "cameras": cameras,
        "paths": list(problem.paths),
        "reference": cameras[problem.reference],
        "method": posterior.method,
        "frame_clocks": {
            c: (None if k is None else [float(v) for v in k]) for c, k in zip(cameras, problem.frame_clocks)
        },
        "heights": [int(h) for h in problem.stored_rows],
        "frame_period_ms": [float(t) for t in problem.frame_period_ms],
        "fixed_total_rows": [None if not np.isfinite(v) else float(v) for v in problem.fixed_total_rows],
        "facts": list(problem.facts),
        "flicker_ruler": {
            "flicker_hz": None if np.isnan(problem.ruler.flicker_hz) else float(problem.ruler.flicker_hz),
            "measured_hz": None if np.isnan(problem.ruler.measured_hz) else float(problem.ruler.measured_hz),
            "used": [bool(u) for u in problem.ruler.used],
            "notes": list(problem.ruler.notes),
        },
        "readout_prior": [float(v) for v in posterior.priors.readout_fraction],
        "n_flashes": int(problem.flash_ids.size),
    }


class SyncResult:
    """Posterior of a synchronization and the synchronized time of any (camera, frame time, row).

    Attributes:
        idata: ``arviz.InferenceData`` with groups posterior (``drift``, ``shift_ms``,
            ``total_rows``, ``time_per_row_ms``, ``sigma_ms`` over ``camera``; ``flash_time_ms``
            over ``flash``), sample_stats, observed_data (``row``), constant_data and
            log_likelihood (``row``).
        metadata: JSON-able dict (cameras, paths, reference, method, frame clocks, heights,
            frame periods, known total rows, flash count, residual RMS).
        events: the matched events dataset (DESIGN §4) the fit used, None where not kept.
    """

    def __init__(self, idata: InferenceData, metadata: Mapping, events: xr.Dataset | None = None):
        self.idata = idata
        self.metadata = dict(metadata)
        self.events = events

    @classmethod
    def from_posterior(cls, posterior: Posterior, events: xr.Dataset | None = None) -> SyncResult:
        """Result of :func:`flashsync_bayes.inference.fit`'s draws, keeping the (matched) ``events`` fitted."""
        result = cls(inference_data(posterior), _metadata(posterior), events)
        residual = result.event_residuals()["residual_ms"].values
        result.metadata["residual_rms_ms"] = float(np.sqrt(np.mean(residual**2)))
        return result

    def event_residuals(self) -> xr.Dataset:
        """Per fitted edge: camera, flash, its reference time (posterior mean, ms) and residual to its flash (ms)."""
        mean = self.idata.posterior.mean(("chain", "draw"))
        data = self.idata.constant_data
        camera = event_camera_indices(self.cameras, data["event_camera"].values)
        mapped = reference_time_ms(
            data["frame_time_ms"].values,
            self.idata.observed_data["row"].values,
            *(mean[name].values[camera] for name in ("drift", "shift_ms", "time_per_row_ms")),
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
        return camera_position(self.metadata["cameras"], self.metadata["paths"], camera, "the question")

    def _draws(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior draws ``(n_draws,)`` of drift, shift_ms and time_per_row_ms of one camera, chains stacked."""
        post = self.idata.posterior
        return tuple(post[n].values[:, :, index].reshape(-1) for n in ("drift", "shift_ms", "time_per_row_ms"))

    def _snap(self, index: int, frame_time_ms) -> np.ndarray:
        """Frame times of camera ``index`` snapped to its frame clock (if any), float64."""
        clock = self.frame_clocks[self.metadata["cameras"][index]]
        return snap_frame_times(np.asarray(frame_time_ms, dtype=np.float64), clock)

    def _points(self, camera, frame_time_ms, row) -> tuple[int, np.ndarray, np.ndarray]:
        """Camera index and its (snapped frame time, row) points broadcast together."""
        c = self._index(camera)
        p, r = np.broadcast_arrays(self._snap(c, frame_time_ms), np.asarray(row, dtype=np.float64))
        return c, p, r

    def _mean(self, index: int) -> tuple[float, float, float]:
        """Posterior mean drift, shift_ms and time_per_row_ms of one camera."""
        return tuple(float(d.mean()) for d in self._draws(index))

    # -- questions ------------------------------------------------------------------------------

    def _readout_ms(self) -> xr.DataArray:
        """Posterior draws of the readout time ``R * T / L`` (camera ms) over (chain, draw, camera)."""
        period = xr.DataArray(np.asarray(self.metadata["frame_period_ms"]), dims="camera", coords={"camera": self.cameras})
        return self.idata.posterior["readout_fraction"] * period

    def parameters(self) -> xr.Dataset:
        """Dataset over camera: mean and ``*_sd`` of drift, shift_ms, time_per_row_ms, total_rows, readout_ms, sigma_ms."""
        post = self.idata.posterior.assign(readout_ms=self._readout_ms())
        out = {}
        for name in PARAMETERS:
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
        c, p, r = self._points(camera, frame_time_ms, row)
        d, s, a = (v[:, None] for v in self._draws(c))
        return reference_time_ms(p.reshape(-1), r.reshape(-1), d, s, a).reshape((d.shape[0],) + p.shape)

    def time(self, camera, frame_time_ms, row) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd (ms) of the reference time of (frame time, row) points, broadcast shape."""
        c, p, r = self._points(camera, frame_time_ms, row)
        d, s, a = self._draws(c)
        dm, sm, am = d.mean(), s.mean(), a.mean()
        flat_p, flat_r = p.reshape(-1), r.reshape(-1)
        mean = reference_time_ms(flat_p, flat_r, dm, sm, am)
        sd = np.empty_like(mean)
        step = max(1, CHUNK_ELEMENTS // max(d.size, 1))
        for start in range(0, flat_p.size, step):
            sl = slice(start, start + step)
            dev = reference_time_ms(flat_p[sl], flat_r[sl], (d - dm)[:, None], (s - sm)[:, None], (a - am)[:, None])
            sd[sl] = np.sqrt(np.mean(dev**2, axis=0))
        return mean.reshape(p.shape), sd.reshape(p.shape)

    def locate(self, camera, reference_time_ms, frame_times_ms) -> tuple[np.ndarray, np.ndarray]:
        """Frame index (-1 before the first frame) and fractional row of reference times in a camera, input shape.

        ``frame_times_ms`` are that camera's frame times (pts, sorted); posterior mean parameters.
        """
        c = self._index(camera)
        return locate(reference_time_ms, self._snap(c, frame_times_ms), *self._mean(c))

    def frame_middle_ms(self, camera, frame_times_ms) -> np.ndarray:
        """Reference time (ms) of the middle stored row ``(height - 1) / 2`` of each frame, shape of input."""
        c = self._index(camera)
        middle = 0.5 * (self.metadata["heights"][c] - 1)
        return reference_time_ms(self._snap(c, frame_times_ms), middle, *self._mean(c))

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

    # -- identifiability and diagnostics --------------------------------------------------------

    def identifiability(self) -> dict[str, dict]:
        """Per camera whether the data pin its time per row, and why.

        A camera is pinned by a given fact (total rows, readout time) or when the posterior sd of
        its readout fraction ``R / L`` is at most :data:`IDENTIFIED_SD_RATIO` of the prior's. With
        one frame rate and locked frame phases the flash edges cannot separate a common time per
        row from shift and drift (DESIGN §5); unless mains-flicker bands measure it (the reason
        names them), the posterior then keeps the prior's width, and the time of rows far from
        the flash edges is uncertain by up to ``readout_ms_sd``.

        Returns ``{camera: {"time_per_row_identified", "reason", "readout_ms", "readout_ms_sd",
        "posterior_prior_sd_ratio"}}``.
        """
        prior_sd = float(beta_moments(*self.metadata["readout_prior"])[1])
        readout = self._readout_ms()
        mean, sd = readout.mean(("chain", "draw")), readout.std(("chain", "draw"))
        fraction_sd = self.idata.posterior["readout_fraction"].std(("chain", "draw"))
        used = self.flicker_ruler["used"]
        others = "flashes and other cameras' flicker bands" if any(used) else "flashes"
        evidence = ["flashes and its flicker bands" if u else others for u in used]
        out = {}
        for i, camera in enumerate(self.cameras):
            fact = self.metadata["facts"][i]
            ratio = float(fraction_sd.sel(camera=camera)) / prior_sd
            spread_ms = float(sd.sel(camera=camera))
            if fact is not None:
                identified, reason = True, f"{fact} given"
            elif ratio <= IDENTIFIED_SD_RATIO:
                identified, reason = True, f"pinned by the {evidence[i]}: readout known to ±{spread_ms:.3f} ms"
            else:
                identified = False
                reason = (
                    f"not pinned by the {evidence[i]}: readout ±{spread_ms:.2f} ms, {100 * ratio:.0f} % of the prior's width"
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
    def flicker_ruler(self) -> dict:
        """What the mains-flicker bands pinned: ``{"flicker_hz", "measured_hz", "used", "notes"}`` (the lamps' nominal
        frequency and the one the reference camera's phase step measured, None where not; per camera; None, False and
        None for results saved before the ruler existed)."""
        n = len(self.cameras)
        unruled = {"flicker_hz": None, "measured_hz": None, "used": [False] * n, "notes": [None] * n}
        return unruled | (self.metadata.get("flicker_ruler") or {})

    @property
    def time_per_row_identified(self) -> dict[str, bool]:
        """Per camera whether its time per row is pinned (see :meth:`identifiability`)."""
        return {camera: v["time_per_row_identified"] for camera, v in self.identifiability().items()}

    def diagnostics(self) -> Diagnostics:
        """Max split R-hat and min bulk ESS of the camera parameters (NaN unless NUTS), divergences, chains."""
        return diagnostics(self.idata, mcmc=self.method == NUTS)

    # -- output ---------------------------------------------------------------------------------

    def _json_names(self, paths) -> list[str]:
        """Camera keys of the JSON: ``paths`` (mapping from labels, or a list in camera order), default the events' paths."""
        if paths is None:
            return list(self.metadata["paths"])
        if isinstance(paths, Mapping):
            return [str(paths.get(c, paths.get(p, p))) for c, p in zip(self.cameras, self.metadata["paths"])]
        names = [str(p) for p in paths]
        if len(names) != len(self.cameras):
            raise FlashsyncError(f"to_json needs {len(self.cameras)} paths, got {len(names)}")
        return names

    def _json_camera(self, index: int, values: xr.Dataset, pinned: dict) -> dict:
        """The JSON entry (plain types) of one camera from its row of :meth:`parameters` and :meth:`identifiability`."""
        clock = self.frame_clocks[self.cameras[index]]
        out = {}
        for name in ("drift", "shift_ms", "time_per_row_ms", "total_rows"):
            out[name] = float(values[name])
            out[f"{name}_sd"] = float(values[f"{name}_sd"])
        return out | {
            "frame_period_ms": float(self.metadata["frame_period_ms"][index]),
            "frame_clock": None if clock is None else {k: float(getattr(clock, k)) for k in CLOCK_FIELDS},
            "time_per_row_identified": bool(pinned["time_per_row_identified"]),
            "time_per_row_reason": pinned["reason"],
            "flicker_bands": self.flicker_ruler["notes"][index],
            "readout_ms": float(values["readout_ms"]),
            "readout_ms_sd": float(values["readout_ms_sd"]),
        }

    def to_json(self, paths: Mapping[str, str] | Sequence[str] | None = None) -> dict:
        """The DESIGN §6 JSON dict (plain types); camera keys are the paths as given.

        ``cameras_left_out`` lists the videos the matching could not link (not synchronized).

        ``paths`` maps camera labels to paths, or lists them in camera order; default: the events' paths.
        """
        names = self._json_names(paths)
        params = self.parameters()
        identifiability = self.identifiability()
        cameras = {
            name: self._json_camera(i, params.sel(camera=camera), identifiability[camera])
            for i, (camera, name) in enumerate(zip(self.cameras, names))
        }
        return {
            "reference": names[self._index(self.reference)],
            "method": self.method,
            "cameras": cameras,
            "n_flashes": self.n_flashes,
            "residual_rms_ms": self.residual_rms_ms,
            "cameras_left_out": list(self.metadata.get("left_out", [])),
        }

    def save(self, path) -> None:
        """Write the InferenceData, metadata and events to a netCDF file atomically."""
        save_idata(path, self.idata, self.metadata, self.events)

    @classmethod
    def load(cls, path) -> SyncResult:
        """Result written by :meth:`save`."""
        return cls(*load_idata(path))

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
