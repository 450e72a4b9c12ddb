"""The joint synchronization model (DESIGN §5) and its inference: lsq, Laplace and NUTS.

Modules, lowest first: :mod:`.problem` (events -> arrays, priors), :mod:`.lsq` (the joint least
squares), :mod:`.model` (the NumPyro model), :mod:`.model_data` (its padded arrays),
:mod:`.whitening` (its reparametrization from the lsq solution), :mod:`.samplers` (NUTS, Laplace)
and :mod:`.fit` (the front door); the methods' names are in :mod:`flashsync_bayes.methods`.
Nothing here imports the result object.
"""

from flashsync_bayes.inference.fit import CAMERA_VARIABLES, Posterior, fit
from flashsync_bayes.inference.lsq import LsqSolution, solve_lsq
from flashsync_bayes.inference.model import ModelData, sync_model
from flashsync_bayes.inference.model_data import model_data
from flashsync_bayes.inference.problem import Priors, Problem, prepare_problem
from flashsync_bayes.inference.samplers import LaplaceDraws, NutsDraws, run_laplace, run_nuts
from flashsync_bayes.methods import LAPLACE, LSQ, METHODS, NUTS

__all__ = [
    "CAMERA_VARIABLES",
    "LAPLACE",
    "LSQ",
    "METHODS",
    "NUTS",
    "LaplaceDraws",
    "LsqSolution",
    "ModelData",
    "NutsDraws",
    "Posterior",
    "Priors",
    "Problem",
    "fit",
    "model_data",
    "prepare_problem",
    "run_laplace",
    "run_nuts",
    "solve_lsq",
    "sync_model",
]
