"""A new LUN whose masking fails and whose undo fails too: the error the caller gets is
the driver's, naming the orphan LUN's id, with the core's rollback failure appended.

Was: the core's rollback retried the delete and raised its own "deleting ... failed"
error in place of the driver's, so the orphan's id reached only the log.
"""

from __future__ import annotations

import pytest

from tests.libsm import fakelsm
from tests.libsm.test_libsm import _by_name, array, m  # noqa: F401  (fixtures)
from virtplane import model
from virtplane.errors import StorageUnavailable


def test_the_caller_sees_the_orphan_lun_id(m, array):  # noqa: F811
    fakelsm.edit(array, fail_mask=True, fail_delete=True)
    with pytest.raises(StorageUnavailable) as caught:
        m.disks.create("d1", "arr", 16 << 20, "raw", "thin")
    orphans = [vid for n, (vid, _) in _by_name(array).items()
               if n.startswith("vp-") and not n.startswith("vp-md-")]
    assert len(orphans) == 1
    text = str(caught.value)
    assert f"LUN id {orphans[0]} is left on the array" in text, text
    assert "remove it there by hand" in text
    assert "failed too" in text and "storage repair" in text  # the rollback's failure
    assert "\n" not in text
    # the store: the half-made image only as one illegal record repair finds
    images = m.store.list(model.Image)
    assert len(images) == 1 and [v.legal for v in images[0].volumes] == [False]
    # once the array answers again, repair removes the leftover record
    fakelsm.edit(array, fail_mask=False, fail_delete=False)
    m.storage.repair("arr")
    assert not any(v.legal is False for i in m.store.list(model.Image) for v in i.volumes)
