"""File names that real instruments and export tools write, opened with no pattern.

Every case cites where its names come from (a public repository's test data or a vendor's
listing on the OME sample server); the names written here follow those names exactly,
over a small grid, with the real prefixes. Each file holds its own number, so the test
checks for every file that the array holds it where its name says (dims, sizes, order and
coordinates together). The README's table of instruments lists the same cases; those that
need a pattern say so here and there.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import ndstack

#: one file: its name, where it belongs (dim -> coordinate value) and other coordinates
File = tuple[str, dict[str, Any], dict[str, Any]]


@dataclass
class Case:
    source: str
    files: list[File]
    dims: tuple[str, ...]  # the dims from the names, in order (Y, X follow)
    pattern: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    others: list[str] = field(default_factory=list)  # files to leave out (thumbnails)


def _guid(*key: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, repr(key))).upper()


def _grid(make: Callable[..., File], **axes: Any) -> list[File]:
    return [make(**dict(zip(axes, v))) for v in itertools.product(*axes.values())]


def imagexpress() -> Case:
    # fmi-faim/faim-ipa resources/ImageXpress/1well-3C-2S-Zmix-T/2024-04-22/1697/, e.g.
    # TimePoint_1/1well-3C-2S-Zmix-T_C07_s1_w1D5F8F51A-3E85-4358-AE51-A465AF87386F.tif and
    # Projection-Mix_E07_s1_w1_thumb4BFD4018-E675-475E-B5AB-2E959E6B6DA1.tif (a thumbnail).
    # GUIDs starting with a digit glued to the index (w11D01380B-...) are real too.
    real = ["D5F8F51A-3E85-4358-AE51-A465AF87386F", "1D01380B-E7DA-4C09-A343-EDA3D235D808"]

    def make(t: int, well: str, s: int, w: int) -> File:
        guid = real.pop() if real else _guid(t, well, s, w)
        name = f"TimePoint_{t}/1well-3C-2S-Zmix-T_{well}_s{s}_w{w}{guid}.tif"
        return name, {"T": t, "well": well, "P": s, "C": w}, {"id": guid}

    files = _grid(make, t=(1, 2), well=("B02", "C07"), s=(1, 2), w=(1, 2, 3))
    thumbs = [f"TimePoint_1/1well-3C-2S-Zmix-T_C07_s1_w{w}_thumb{_guid(w)}.tif" for w in (1, 2)]
    return Case("fmi-faim/faim-ipa resources/ImageXpress", files, ("P", "well", "T", "C"),
                others=thumbs)  # fmt: skip


def metaxpress_export() -> Case:
    # fmi-faim/faim-ipa resources/ImageXpress_exported/: 9987_Plate_3434/TimePoint_1/
    # ZStep_0/9987_B02_s1_w1.TIF, ZStep_2/9987_B03_s2_w3.TIF
    def make(t: int, z: int, well: str, s: int, w: int) -> File:
        name = f"9987_Plate_3434/TimePoint_{t}/ZStep_{z}/9987_{well}_s{s}_w{w}.TIF"
        return name, {"T": t, "Z": z, "well": well, "P": s, "C": w}, {}

    files = _grid(make, t=(1, 2), z=(0, 1, 2), well=("B02", "B03"), s=(1, 2), w=(1, 3))
    return Case("fmi-faim/faim-ipa resources/ImageXpress_exported", files,
                ("P", "well", "T", "C", "Z"))  # fmt: skip


def bbbc006() -> Case:
    # BBBC006 as listed in cgohlke/tifffile tests/test_tifffile.py: BBBC006_v1_images_z_00/
    # mcf-z-stacks-03212011_a01_s1_w1a57.tif, ..._a03_s2_w1419.tif, ..._p24_s2_w2283.tif,
    # BBBC006_v1_images_z_01/..._p24_s2_w11cf.tif: a 3-character hex fragment per file
    real = {("00", "a01", 1, 1): "a57", ("00", "a03", 2, 1): "419", ("01", "p24", 2, 1): "1cf"}

    def make(z: str, well: str, s: int, w: int) -> File:
        frag = (
            real.get((z, well, s, w))
            or uuid.uuid5(uuid.NAMESPACE_URL, z + well + str(s * w)).hex[:3]
        )
        name = f"BBBC006_v1_images_z_{z}/mcf-z-stacks-03212011_{well}_s{s}_w{w}{frag}.tif"
        return name, {"Z": int(z), "well": well, "P": s, "C": w}, {"id": frag}

    files = _grid(make, z=("00", "01"), well=("a01", "a03", "p24"), s=(1, 2), w=(1, 2))
    return Case("cgohlke/tifffile tests/test_tifffile.py (BBBC006)", files,
                ("P", "well", "C", "Z"))  # fmt: skip


def cv8000() -> Case:
    # fmi-faim/faim-ipa resources/CV8000/...: CV8000-Minimal-DataSet-2C-3W-4S-FP2-stack_
    # D08_T0001F001L01A01Z01C01.tif; correction images DC_DCAM#1_CAM3.tif beside them
    prefix = "CV8000-Minimal-DataSet-2C-3W-4S-FP2-stack"

    def make(well: str, f: int, z: int, c: int) -> File:
        name = f"{prefix}_{well}_T0001F{f:03d}L01A{c:02d}Z{z:02d}C{c:02d}.tif"
        return name, {"well": well, "P": f, "Z": z, "C": c}, {"A": c}

    files = _grid(make, well=("D08", "E03", "F08"), f=(1, 2, 3), z=(1, 2), c=(1, 2))
    return Case("fmi-faim/faim-ipa resources/CV8000", files, ("P", "well", "C", "Z"),
                others=["DC_DCAM#1_CAM3.tif"])  # fmt: skip


def opera_phenix() -> Case:
    # OME sample server PerkinElmer-Operetta (listed in OpenHCSDev/openhcs
    # benchmark/datasets/bioformats_hcs.py): Images/r02c02f01p02-ch1sk1fk1fl1.tiff
    def make(r: int, c: int, f: int, p: int, ch: int) -> File:
        name = f"Images/r{r:02d}c{c:02d}f{f:02d}p{p:02d}-ch{ch}sk1fk1fl1.tiff"
        return name, {"row": r, "col": c, "P": f, "Z": p, "C": ch}, {}

    files = _grid(make, r=(1, 2), c=(2, 3), f=(1, 2), p=(1, 2), ch=(1, 3))
    return Case("downloads.openmicroscopy.org PerkinElmer-Operetta", files,
                ("P", "row", "col", "C", "Z"))  # fmt: skip


def cellomics() -> Case:
    # OME sample server Cellomics (via OpenHCSDev/openhcs bioformats_hcs.py):
    # AS_09125_050116110001_A01f00d1.DIB (here as .TIF, as ArrayScan also writes)
    def make(well: str, f: int, d: int) -> File:
        return f"AS_09125_050116110001_{well}f{f:02d}d{d}.TIF", {"well": well, "P": f, "C": d}, {}

    files = _grid(make, well=("A01", "A03"), f=(0, 5), d=(0, 1, 2))
    return Case("downloads.openmicroscopy.org Cellomics", files, ("P", "well", "C"))


def scanr() -> Case:
    # OME sample server ScanR/idr0009: data/--W00002--P00001--Z00000--T00000--nucleus-dapi.tif
    def make(w: int, p: int, z: int, t: int, ch: str) -> File:
        name = f"data/--W{w:05d}--P{p:05d}--Z{z:05d}--T{t:05d}--{ch}.tif"
        return name, {"well": w, "P": p, "Z": z, "T": t, "C": ch}, {}

    files = _grid(make, w=(2, 3), p=(1, 2), z=(0, 1), t=(0, 1), ch=("nucleus-dapi", "pm-647"))
    return Case("downloads.openmicroscopy.org ScanR/idr0009", files, ("P", "well", "T", "C", "Z"))


def leica_matrix() -> Case:
    # hmbotelho/htmrenamer_testdata leica_matrixscreener/06_SP8_TC/raw/S--S00/W--U00--V03/
    # P--X00--Y00/I--L0000--S00--U00--V03--J08--E00--O00--X00--Y00--T0000--Z00--C00.ome.tif
    def make(v: int, x: int, y: int, t: int, c: int) -> File:
        name = (
            f"S--S00/W--U00--V{v:02d}/P--X{x:02d}--Y{y:02d}/I--L{t:04d}--S00--U00--V{v:02d}"
            f"--J08--E00--O00--X{x:02d}--Y{y:02d}--T{t:04d}--Z00--C{c:02d}.ome.tif"
        )
        return name, {"V": v, "tile_x": x, "tile_y": y, "T": t, "C": c}, {"L": t}

    files = _grid(make, v=(0, 3), x=(0, 1), y=(0, 1), t=(0, 6), c=(0, 1))
    # fields are kept apart (tiles="axes"): stitching them would assume no overlap
    return Case("hmbotelho/htmrenamer_testdata leica_matrixscreener", files,
                ("V", "tile_y", "tile_x", "T", "C"), options={"tiles": "axes"})  # fmt: skip


def leica_navigator() -> Case:
    # hmbotelho/htmrenamer_testdata leica_navigator/: TileScan 2_A1-1_t0_z0_ch00.tif,
    # TileScan 2_H9-4_t2_z4_ch01.tif (unpadded t and z, a space in the job name)
    def make(well: str, s: int, t: int, z: int, c: int) -> File:
        name = f"TileScan 2_{well}-{s}_t{t}_z{z}_ch{c:02d}.tif"
        return name, {"well": well, "P": s, "T": t, "Z": z, "C": c}, {}

    files = _grid(make, well=("A1", "H9"), s=(1, 4), t=(0, 2), z=(0, 4), c=(0, 1))
    return Case("hmbotelho/htmrenamer_testdata leica_navigator", files,
                ("P", "well", "T", "C", "Z"))  # fmt: skip


def zeiss_zen() -> Case:
    # hmbotelho/htmrenamer_testdata zeiss/01_T/raw/: demoplate_01_s01t1.tif ... s03t7.tif
    def make(s: int, t: int) -> File:
        return f"demoplate_01_s{s:02d}t{t}.tif", {"P": s, "T": t}, {}

    return Case("hmbotelho/htmrenamer_testdata zeiss/01_T/raw",
                _grid(make, s=(1, 2, 3), t=range(1, 8)), ("P", "T"))  # fmt: skip


def htmrenamer() -> Case:
    # hmbotelho/htmrenamer_testdata leica_navigator/02_PTZC/renamed/W0001--A01--001/
    # P001--A01--001/testplate--A01--001--W0001--P001--T0000--Z001--C01.tif
    def make(w: int, p: int, t: int, z: int, c: int) -> File:
        name = (
            f"W{w:04d}--A01--001/P{p:03d}--A01--001/"
            f"testplate--A01--001--W{w:04d}--P{p:03d}--T{t:04d}--Z{z:03d}--C{c:02d}.tif"
        )
        return name, {"well": w, "P": p, "T": t, "Z": z, "C": c}, {}

    files = _grid(make, w=(1, 2), p=(1, 2), t=(0, 3), z=(1, 2), c=(0, 1))
    return Case("hmbotelho/htmrenamer_testdata */renamed", files, ("P", "well", "T", "C", "Z"))


def micromanager() -> Case:
    # Micro-Manager's separate image files (micro-manager.org/Micro-Manager_File_Formats):
    # Pos0/img_channel000_position000_time000000000_z000.tif
    def make(p: int, c: int, t: int, z: int) -> File:
        name = f"Pos{p}/img_channel{c:03d}_position{p:03d}_time{t:09d}_z{z:03d}.tif"
        return name, {"P": p, "C": c, "T": t, "Z": z}, {}

    files = _grid(make, p=(0, 1), c=(0, 1), t=(0, 1, 2), z=(0, 1))
    return Case("micro-manager.org Micro-Manager_File_Formats", files, ("P", "T", "C", "Z"))


def lattice_light_sheet() -> Case:
    # tlambert03/LLSpy docs/main.rst: cell5_ch0_stack0000_488nm_0000000msec_0020931273msecAbs.tif
    def make(t: int, c: int) -> File:
        wl, rel = (488, 560)[c], t * 880
        name = f"cell5_ch{c}_stack{t:04d}_{wl}nm_{rel:07d}msec_{20931273 + rel + c:010d}msecAbs.tif"
        return name, {"T": t, "C": c}, {"wavelength": wl, "msec": rel}

    return Case("tlambert03/LLSpy docs/main.rst", _grid(make, t=range(3), c=(0, 1)), ("T", "C"))


def bruker() -> Case:
    # catalystneuro/roiextractors tests/test_brukertiffimagingextactor.py:
    # NCCR32_2022_11_03_IntoTheVoid_t_series-005_Cycle00001_Ch2_000001.ome.tif; the last
    # number is the plane of a volume (or the frame): unlabelled, it stays 'field5'
    prefix = "NCCR32_2022_11_03_IntoTheVoid_t_series-005"

    def make(cy: int, ch: int, i: int) -> File:
        name = f"{prefix}_Cycle{cy:05d}_Ch{ch}_{i:06d}.ome.tif"
        return name, {"T": cy, "C": ch, "field8": i}, {}

    return Case("catalystneuro/roiextractors tests (Bruker Prairie View)",
                _grid(make, cy=(1, 2, 3), ch=(1, 2), i=(1, 2)), ("field8", "T", "C"))  # fmt: skip


def bruker_with_pattern() -> Case:
    # the same names with a pattern that says the last number is the plane Z
    case = bruker()
    files = [(n, {"T": w["T"], "C": w["C"], "Z": w["field8"]}, o) for n, w, o in case.files]
    return Case(case.source, files, ("T", "C", "Z"), pattern="*_Cycle{T}_Ch{C}_{Z}.ome.tif")


def thorimage() -> Case:
    # catalystneuro/roiextractors tests/test_thortiffimagingextractor.py:
    # ChanA_001_001_001_001.tif (four indices the source does not name; ChanA is the
    # channel's name, a whole word)
    def make(ch: str, z: int, t: int) -> File:
        return (
            f"Chan{ch}_001_001_{z:03d}_{t:03d}.tif",
            {"C": f"Chan{ch}", "field3": z, "field4": t},
            {},
        )

    return Case("catalystneuro/roiextractors (ThorImageLS)",
                _grid(make, ch="AB", z=(1, 2, 3), t=(1, 2)), ("field3", "field4", "C"))  # fmt: skip


def visiview() -> Case:
    # fmi-faim/faim-ipa resources/ome-tiff/c3_z33.companion.ome: c3_z33_w1Conf640.ome.tif
    def make(w: int, name: str) -> File:
        return f"c3_z33_w{w}{name}.ome.tif", {"C": w}, {"Conf": int(name[4:])}

    files = [make(1, "Conf640"), make(2, "Conf561"), make(3, "Conf405")]
    return Case("fmi-faim/faim-ipa resources/ome-tiff (VisiView)", files, ("C",))


def metamorph() -> Case:
    # cgohlke/tifffile tests/test_tifffile.py: 60x_2well_diffexpos1_w1sdcGFP_s1_t1.stk
    def make(w: int, s: int, t: int) -> File:
        chan = ("sdcGFP", "sdcRFP")[w - 1]
        name = f"60x_2well_diffexpos1_w{w}{chan}_s{s}_t{t}.tif"
        return name, {"C": w, "P": s, "T": t}, {"channel": chan}

    return Case("cgohlke/tifffile tests (MetaMorph)",
                _grid(make, w=(1, 2), s=(1, 2), t=(1, 2, 3)), ("P", "T", "C"))  # fmt: skip


def keyence() -> Case:
    # hammerlab/cytokit python/notebooks/examples/marker_profiling_example.ipynb:
    # 1_00001_Z014_CH1.tif; the tile number has no label: it stays 'field2'
    def make(tile: int, z: int, c: int) -> File:
        return f"1_{tile:05d}_Z{z:03d}_CH{c}.tif", {"field2": tile, "Z": z, "C": c}, {}

    return Case("hammerlab/cytokit (Keyence BZ-X)",
                _grid(make, tile=(1, 2), z=(14, 15), c=(1, 4)), ("field2", "C", "Z"))  # fmt: skip


def incell() -> Case:
    # OME sample server HCS/INCELL2000: "C - 05(fld 1 wv DAPI - DAPI z 01).tif"; "A - 1(fld
    # 1 wv Cy5 - Cy5).tif": spaces, parentheses and channel names with digits: a pattern
    def make(row: str, col: int, fld: int, wv: str) -> File:
        name = f"{row} - {col}(fld {fld} wv {wv}).tif"
        return name, {"row": row, "col": col, "P": fld, "C": wv}, {}

    files = _grid(make, row="AC", col=(1, 5), fld=(1, 2), wv=("Cy5 - Cy5", "DAPI - DAPI"))
    pattern = r"(?P<row>[A-P]) - (?P<col>\d+)\(fld (?P<P>\d+) wv (?P<C>[^)]+)\)\.tif$"
    return Case("downloads.openmicroscopy.org HCS/INCELL2000", files, ("P", "row", "col", "C"),
                pattern=pattern)  # fmt: skip


def acquifer() -> Case:
    # Luxendo/acquifer-IJ-examples src/main/resources/macro/parseMetadata.ijm:
    # -A002--PO01--LO001--CO6--SL001--PX32500--PW0080--IN0020--TM281--X023590--Y011262--
    # Z211710--T0200262822--WE00002.tif: stage positions and a time stamp in every name
    # make inference keep T (ms) as the axis: a pattern names loop, channel and slice
    def make(lo: int, co: int, sl: int) -> File:
        name = (
            f"-A002--PO01--LO{lo:03d}--CO{co}--SL{sl:03d}--PX32500--PW0080--IN0020--TM281"
            f"--X023590--Y011262--Z{211710 + 10 * sl}--T{200262822 + 60000 * lo + sl:010d}"
            "--WE00002.tif"
        )
        return name, {"T": lo, "C": co, "Z": sl}, {}

    return Case("Luxendo/acquifer-IJ-examples (ACQUIFER IM04)",
                _grid(make, lo=(1, 2), co=(1, 6), sl=(1, 2, 3)), ("T", "C", "Z"),
                pattern="*--LO{T:d}--CO{C:d}--SL{Z:d}--*.tif")  # fmt: skip


def incucyte() -> Case:
    # Leiden-Cell-Observatory/OMERO_scripts incucyte/README.md: EssenFiles/ScanData/2505/16/
    # 1124/1248/A1-1-C1.tif: the time is only in the folders (YYMM/DD/HHMM): a pattern
    def make(hhmm: str, well: str, f: int, c: str) -> File:
        name = f"EssenFiles/ScanData/2505/16/{hhmm}/1248/{well}-{f}-{c}.tif"
        return name, {"T": int(hhmm), "well": well, "P": f, "C": c}, {}

    files = _grid(make, hhmm=("1124", "1324"), well=("A1", "B2"), f=(1, 2), c=("C1", "Ph"))
    pattern = "EssenFiles/ScanData/{yymm}/{dd}/{T:d}/{plate}/{well}-{P:d}-{C}.tif"
    return Case("Leiden-Cell-Observatory/OMERO_scripts incucyte/README.md", files,
                ("P", "well", "T", "C"), pattern=pattern)  # fmt: skip


def camera_time_stamps() -> Case:
    # the form reported in issue 15 (frames named by acquisition time only)
    stamps = ["14-22-07.123", "14-22-07.623", "14-22-08.124", "14-23-59.999", "15-00-00.010"]

    def make(i: int) -> File:
        iso = f"2024-03-05T{stamps[i][:2]}:{stamps[i][3:5]}:{stamps[i][6:]}"
        return f"cam1_2024-03-05_{stamps[i]}.tif", {"T": i}, {"time": np.datetime64(iso, "us")}

    return Case("issue 15 (time-stamped camera frames)", _grid(make, i=range(5)), ("T",))


CASES = {
    f.__name__: f
    for f in (
        imagexpress, metaxpress_export, bbbc006, cv8000, opera_phenix, cellomics, scanr,
        leica_matrix, leica_navigator, zeiss_zen, htmrenamer, micromanager,
        lattice_light_sheet, bruker, bruker_with_pattern, thorimage, visiview, metamorph,
        keyence, incell, acquifer, incucyte, camera_time_stamps,
    )
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_instrument_names(name: str, tmp_path: Path) -> None:
    case = CASES[name]()
    folder = tmp_path / name
    for i, (fname, _, _) in enumerate(case.files):
        path = folder / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, np.full((2, 3), i, np.uint16), photometric="minisblack")
    for fname in case.others:
        tifffile.imwrite(folder / fname, np.full((5, 5), 999, np.uint16), photometric="minisblack")
    if case.others:
        with pytest.warns(ndstack.SkippedFilesWarning):
            arr = ndstack.open(folder, pattern=case.pattern, **case.options)
        assert sorted(arr.attrs["skipped_files"]) == sorted(case.others)
    else:
        arr = ndstack.open(folder, pattern=case.pattern, **case.options)
    assert arr.dims == (*case.dims, "Y", "X"), arr.attrs["axis_sources"]
    assert arr.attrs["missing"] == []
    sizes = {d: len({str(w[d]) for _, w, _ in case.files}) for d in case.dims}
    assert dict(arr.sizes) == {**sizes, "Y": 2, "X": 3}
    values = arr.load()
    for i, (fname, where, coords) in enumerate(case.files):
        cell = values.sel(where)
        assert (cell.values == i).all(), f"{fname} is not at {where}"
        for key, expected in coords.items():
            assert cell.coords[key].values == expected, (fname, key)
