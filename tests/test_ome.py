"""Multi-file OME-TIFF data sets open from the OME-XML the files carry, not their names.

The files are written here with the structure of the OME sample ``tubhiswt-4D`` (every
file one Z stack, ``tubhiswt_C<c>_TP<t>.ome.tif``, each holding the OME-XML of all) and
of Micro-Manager's MMStack (``<name>_MMStack_Pos0.ome.tif`` continued by
``..._Pos0_1.ome.tif``, the OME-XML in the first file only).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile

import ndstack
from ndstack._grid import ReadFailedWarning
from ndstack.errors import CorruptFileError

from .conftest import bytes_read


def _ome_xml(own_uuid: str, sizes: dict[str, int], tiffdata: str, channels: list[str]) -> str:
    chans = "".join(
        f'<Channel ID="Channel:0:{i}" Name="{n}" SamplesPerPixel="1"/>'
        for i, n in enumerate(channels)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{own_uuid}">'
        '<Image ID="Image:0" Name="sample"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" '
        f'Type="uint16" SizeX="{sizes["X"]}" SizeY="{sizes["Y"]}" SizeZ="{sizes["Z"]}" '
        f'SizeC="{sizes["C"]}" SizeT="{sizes["T"]}" PhysicalSizeX="0.104" '
        'PhysicalSizeY="0.104" PhysicalSizeZ="0.5">'
        f"{chans}{tiffdata}</Pixels></Image></OME>"
    )


def _plane(t: int, c: int, z: int, shape: tuple[int, ...] = (6, 7)) -> np.ndarray:
    rng = np.random.default_rng(t * 100 + c * 10 + z)
    return rng.integers(0, 60000, shape, dtype=np.uint16)


def write_tubhiswt(
    folder: Path, nt: int = 3, nc: int = 2, nz: int = 4, shape: tuple[int, int] = (6, 7)
) -> np.ndarray:
    """One Z stack a file, each file holding the OME-XML of all; the truth as TCZYX."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        (c, t): (f"tubhiswt_C{c}_TP{t}.ome.tif", f"urn:uuid:{uuid.uuid4()}")
        for c in range(nc)
        for t in range(nt)
    }
    tiffdata = "".join(
        f'<TiffData FirstC="{c}" FirstT="{t}" FirstZ="0" IFD="0" PlaneCount="{nz}">'
        f'<UUID FileName="{name}">{u}</UUID></TiffData>'
        for (c, t), (name, u) in files.items()
    )
    sizes = {"X": shape[1], "Y": shape[0], "Z": nz, "C": nc, "T": nt}
    truth = np.stack([np.stack([np.stack([_plane(t, c, z, shape) for z in range(nz)])
                                for c in range(nc)]) for t in range(nt)])  # fmt: skip
    for (c, t), (name, u) in files.items():
        xml = _ome_xml(u, sizes, tiffdata, ["GFP", "mCherry"][:nc])
        tifffile.imwrite(folder / name, truth[t, c], description=xml, metadata=None,
                         photometric="minisblack")  # fmt: skip
    return truth


def write_mmstack(folder: Path, nt: int = 6, split: int = 4) -> np.ndarray:
    """A T series over a file and its continuation; the OME-XML in the first only."""
    folder.mkdir(parents=True, exist_ok=True)
    main, cont = "run_1_MMStack_Pos0.ome.tif", "run_1_MMStack_Pos0_1.ome.tif"
    u_main, u_cont = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    tiffdata = (
        f'<TiffData FirstC="0" FirstT="0" FirstZ="0" IFD="0" PlaneCount="{split}">'
        f'<UUID FileName="{main}">{u_main}</UUID></TiffData>'
        f'<TiffData FirstC="0" FirstT="{split}" FirstZ="0" IFD="0" PlaneCount="{nt - split}">'
        f'<UUID FileName="{cont}">{u_cont}</UUID></TiffData>'
    )
    truth = np.stack([_plane(t, 0, 0) for t in range(nt)])
    xml = _ome_xml(u_main, {"X": 7, "Y": 6, "Z": 1, "C": 1, "T": nt}, tiffdata, ["DAPI"])
    tifffile.imwrite(folder / main, truth[:split], description=xml, metadata=None,
                     photometric="minisblack")  # fmt: skip
    tifffile.imwrite(folder / cont, truth[split:], metadata=None, photometric="minisblack")
    return truth


def test_a_multi_file_ome_data_set_opens_from_its_metadata(tmp_path: Path) -> None:
    truth = write_tubhiswt(tmp_path / "tub")
    arr = ndstack.open(tmp_path / "tub")
    assert arr.attrs["layout"] == "ome" and arr.attrs["files"] == 6
    assert arr.dims == ("T", "C", "Z", "Y", "X") and arr.shape == truth.shape
    assert arr.coords["C"].values.tolist() == ["GFP", "mCherry"]
    assert arr.attrs["pixel_size"] == {"Z": 0.5, "Y": 0.104, "X": 0.104}
    np.testing.assert_array_equal(arr.values, truth)  # every plane from its file and page
    np.testing.assert_array_equal(
        arr.isel(T=slice(1, 3), Z=[3, 0], Y=slice(2, 5)).values, truth[1:3, :, [3, 0], 2:5]
    )
    assert "OME-XML of tubhiswt_C0_TP0.ome.tif" in arr.attrs["axis_sources"]["T"]
    assert "dims from the files' OME-XML" in ndstack.format_info(ndstack.info(arr))


def test_one_plane_of_an_ome_data_set_reads_one_plane(tmp_path: Path) -> None:
    truth = write_tubhiswt(tmp_path / "tub", nz=16, shape=(128, 128))
    arr = ndstack.open(tmp_path / "tub")
    before = bytes_read()
    plane = arr.isel(T=2, C=1, Z=9).values
    read = bytes_read() - before
    np.testing.assert_array_equal(plane, truth[2, 1, 9])
    assert read <= 1.5 * plane.nbytes  # the plane's bytes, not the file's 16 planes


def test_continuation_files_continue_the_series(tmp_path: Path) -> None:
    truth = write_mmstack(tmp_path / "mm")
    arr = ndstack.open(tmp_path / "mm")
    assert arr.dims == ("T", "Y", "X") and arr.shape == truth.shape
    assert arr.attrs["files"] == 2 and arr.attrs["skipped"] == 0
    np.testing.assert_array_equal(arr.values, truth)
    # and it survives a store, channel names and all
    ndstack.to_zarr(arr, tmp_path / "out.ome.zarr")
    np.testing.assert_array_equal(ndstack.open(tmp_path / "out.ome.zarr").values, truth)


def test_a_missing_continuation_file_is_reported_and_filled(tmp_path: Path) -> None:
    truth = write_mmstack(tmp_path / "mm")
    (tmp_path / "mm" / "run_1_MMStack_Pos0_1.ome.tif").unlink()
    with pytest.warns(ndstack.MissingFilesWarning, match="2 of 6 planes"):
        arr = ndstack.open(tmp_path / "mm", fill_value=7)
    assert arr.attrs["missing"] == ["T=4", "T=5"]
    np.testing.assert_array_equal(arr.values[:4], truth[:4])
    assert (arr.values[4:] == 7).all()


def test_files_outside_the_data_set_are_left_out_and_named(tmp_path: Path) -> None:
    truth = write_tubhiswt(tmp_path / "tub")
    tifffile.imwrite(tmp_path / "tub" / "zz_overview.tif", np.zeros((3, 3), np.uint16))
    with pytest.warns(ndstack.SkippedFilesWarning, match="zz_overview.tif"):
        arr = ndstack.open(tmp_path / "tub")
    assert arr.attrs["skipped_files"] == ["zz_overview.tif"]
    np.testing.assert_array_equal(arr.values, truth)


def test_a_truncated_file_of_the_data_set_names_itself(tmp_path: Path) -> None:
    write_tubhiswt(tmp_path / "tub")
    victim = tmp_path / "tub" / "tubhiswt_C1_TP2.ome.tif"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match=r"tubhiswt_C1_TP2.ome.tif: not a readable"):
        ndstack.open(tmp_path / "tub")  # before any computation


def test_an_unreadable_plane_raises_or_fills_as_asked(tmp_path: Path) -> None:
    truth = write_mmstack(tmp_path / "mm")
    cont = tmp_path / "mm" / "run_1_MMStack_Pos0_1.ome.tif"
    arr = ndstack.open(tmp_path / "mm")
    filled = ndstack.open(tmp_path / "mm", on_error="fill", fill_value=3)
    cont.write_bytes(cont.read_bytes()[:200])  # cut after the open: the pixels are gone
    with pytest.raises(CorruptFileError, match=r"run_1_MMStack_Pos0_1\.ome\.tif: "):
        arr.isel(T=5).values
    with pytest.warns(ReadFailedWarning, match="run_1_MMStack_Pos0_1.ome.tif"):
        values = filled.values
    np.testing.assert_array_equal(values[:4], truth[:4])
    assert (values[4:] == 3).all()


def test_a_pattern_still_reads_the_names(tmp_path: Path) -> None:
    """pattern= says the user wants the names: each file its own Z stack."""
    truth = write_tubhiswt(tmp_path / "tub")
    arr = ndstack.open(tmp_path / "tub", pattern="tubhiswt_C{C}_TP{T}.ome.tif")
    assert arr.attrs["layout"] == "pattern"
    assert arr.dims == ("T", "C", "Z", "Y", "X")
    np.testing.assert_array_equal(arr.values, truth)


def test_a_small_data_set_beside_many_other_files_does_not_take_over(tmp_path: Path) -> None:
    write_mmstack(tmp_path / "exp" / "calib")
    for t in range(10):
        tifffile.imwrite(tmp_path / "exp" / f"img_t{t:03d}.tif", np.full((6, 7), t, np.uint16))
    with pytest.warns(ndstack.SkippedFilesWarning):  # the two calibration files
        arr = ndstack.open(tmp_path / "exp")
    assert arr.attrs["layout"] == "inferred" and arr.sizes["T"] == 10


def test_renamed_single_file_exports_open_by_their_names(tmp_path: Path) -> None:
    """Each file an OME-TIFF of its own that still declares the name it was exported as."""
    folder = tmp_path / "ren"
    folder.mkdir()
    for t in range(3):
        u = f"urn:uuid:{uuid.uuid4()}"
        tiffdata = (
            f'<TiffData FirstC="0" FirstT="0" FirstZ="0" IFD="0" PlaneCount="2">'
            f'<UUID FileName="export.ome.tif">{u}</UUID></TiffData>'
        )
        xml = _ome_xml(u, {"X": 7, "Y": 6, "Z": 2, "C": 1, "T": 1}, tiffdata, ["DAPI"])
        data = np.full((2, 6, 7), t, np.uint16)
        tifffile.imwrite(folder / f"img_t{t}.ome.tif", data, description=xml, metadata=None,
                         photometric="minisblack")  # fmt: skip
    arr = ndstack.open(folder)
    assert arr.dims == ("T", "Z", "Y", "X") and arr.sizes["T"] == 3
    assert [int(arr.isel(T=t, Z=1, Y=0, X=0)) for t in range(3)] == [0, 1, 2]
