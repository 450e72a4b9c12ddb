import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashsync_bayes import transfer
from flashsync_bayes.errors import FlashsyncError


@given(light=st.floats(0.0, 1.6), name=st.sampled_from(transfer.TRANSFERS))
def test_decoding_undoes_encoding(light, name):
    assert transfer.decode(transfer.encode(light, name), name) == pytest.approx(light, rel=1e-9, abs=1e-12)


def test_curves_pass_through_their_standard_points():
    # ITU-R BT.709: the linear segment ends at L = 0.018 (V = 0.081), white is 1; BT.2100 HLG: L = 1/12 at V = 0.5
    np.testing.assert_allclose(transfer.encode([0.0, 0.018, 1.0], transfer.BT709), [0.0, 0.081, 1.0], atol=1e-3)
    np.testing.assert_allclose(transfer.encode([0.0, 1.0 / 12.0, 1.0], transfer.HLG), [0.0, 0.5, 1.0], atol=1e-6)
    assert transfer.encode(0.4, transfer.LINEAR) == 0.4
    # a flash doubling the light raises a mid-grey BT.709 code by ~37 %, not 100 %
    doubled = transfer.encode(0.4, transfer.BT709) / transfer.encode(0.2, transfer.BT709)
    assert 1.3 < doubled < 1.45


def test_tags_name_the_transfer_assumed():
    assert transfer.transfer_of_tag(None) == transfer.BT709  # untagged camera video
    assert transfer.transfer_of_tag("smpte170m") == transfer.BT709
    assert transfer.transfer_of_tag("linear") == transfer.LINEAR
    assert transfer.transfer_of_tag("arib-std-b67") == transfer.HLG
    with pytest.raises(FlashsyncError, match="unknown transfer"):
        transfer.check_transfer("gamma22")
