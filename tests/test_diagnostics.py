"""Tests of diagnostics.py: R-hat, ESS and divergences of a fit's draws."""

import numpy as np

from flashsync_bayes import SyncResult
from flashsync_bayes.diagnostics import diagnostics, problems


def test_diagnostics(fits):
    found = fits["bayes"].diagnostics()
    assert found.divergences == 0 and found.chains == 2
    assert found.r_hat_max < 1.03 and found.ess_bulk_min > 150
    assert np.isnan(fits["laplace"].diagnostics().r_hat_max)
    broken = SyncResult(fits["bayes"].idata.copy(), fits["bayes"].metadata)
    broken.idata.sample_stats["diverging"][0, :3] = True
    assert broken.diagnostics().divergences == 3
    assert any("3 divergent" in problem for problem in problems(diagnostics(broken.idata)))
