"""Pure name parsing: no disk access."""

from __future__ import annotations

import numpy as np
import pytest

from ndstack._names import natural_key, parse_names, template_to_regex
from ndstack.errors import DuplicatePositionError, LayoutError, PatternError

LLS = (
    "ex6-2_CamA_ch{c}_CAM1_stack{s:04d}_{wl}nm_{msec:07d}msec_{abs:010d}msecAbs"
    "_000x_000y_000z_0000t.tif"
)


def lls_names(n_stacks: int = 5, abs_per_channel: bool = True) -> list[str]:
    names = []
    for c, wl in enumerate((488, 560, 642)):
        for s in range(n_stacks):
            msec = 131245 + 2013 * s
            absms = 1423040 + 2013 * s + (210 * c if abs_per_channel else 0)
            names.append(LLS.format(c=c, s=s, wl=wl, msec=msec, abs=absms))
    return sorted(names, key=natural_key)


def test_natural_sort_orders_numbers_by_value() -> None:
    names = ["img_10.tif", "img_9.tif", "img_100.tif", "img_1.tif"]
    assert sorted(names, key=natural_key) == ["img_1.tif", "img_9.tif", "img_10.tif", "img_100.tif"]


def test_lattice_lightsheet_correlated_fields_become_coordinates() -> None:
    lay = parse_names(lls_names())
    assert lay.dims == ("T", "C")
    assert lay.shape == (5, 3)
    coords = {c.name: c for c in lay.coords}
    assert set(coords) == {"wavelength", "msec", "msecAbs"}
    assert coords["wavelength"].dims == ("C",)
    assert coords["wavelength"].values.tolist() == [488, 560, 642]
    assert coords["wavelength"].units == "nm"
    assert coords["msec"].dims == ("T",)
    assert coords["msec"].values.tolist() == [131245 + 2013 * s for s in range(5)]
    # absolute time differs per channel too: a 2-D coordinate on (T, C)
    assert coords["msecAbs"].dims == ("T", "C")
    assert coords["msecAbs"].values[2, 1] == 1423040 + 2013 * 2 + 210
    assert lay.constants["CAM"] == 1 and lay.constants["x"] == 0


def test_absolute_time_that_follows_stack_only_is_on_T() -> None:
    lay = parse_names(lls_names(abs_per_channel=False))
    coords = {c.name: c.dims for c in lay.coords}
    assert coords["msecAbs"] == ("T",)


def test_index_maps_each_file_to_its_position() -> None:
    names = lls_names()
    lay = parse_names(names)
    for name, (t, c) in zip(names, lay.index):
        assert f"_ch{c}_" in name and f"stack{t:04d}" in name


def test_mydata_tiles_channels_time_z() -> None:
    names = [
        f"mydata_ch{c}_{t}t_{x}x_{y}y_{z}z.tif"
        for c in range(2)
        for t in range(3)
        for x in range(2)
        for y in range(3)
        for z in range(4)
    ]
    lay = parse_names(sorted(names, key=natural_key))
    assert lay.dims == ("tile_y", "tile_x", "T", "C", "Z")
    assert lay.shape == (3, 2, 3, 2, 4)


def test_micromanager_image_sequence() -> None:
    names = [
        f"img_channel{c:03d}_position{p:03d}_time{t:09d}_z{z:03d}.tif"
        for c in range(2)
        for p in range(3)
        for t in range(2)
        for z in range(4)
    ]
    lay = parse_names(sorted(names, key=natural_key))
    assert lay.dims == ("P", "T", "C", "Z")
    assert lay.shape == (3, 2, 2, 4)


def test_micromanager_channel_words_are_inferred_as_channels() -> None:
    names = [
        f"img_{t:09d}_{ch}_{z:03d}.tif"
        for t in range(2)
        for ch in ("DAPI", "FITC")
        for z in range(3)
    ]
    lay = parse_names(sorted(names, key=natural_key))
    assert "C" in lay.dims
    c = lay.dims.index("C")
    assert lay.axes[c].values == ("DAPI", "FITC")


def test_imagej_sequence_unpadded_numbers_in_natural_order() -> None:
    names = sorted([f"img{i}.tif" for i in range(1, 13)], key=natural_key)
    lay = parse_names(names)
    assert lay.dims == ("img",)
    assert lay.axes[0].values == tuple(range(1, 13))
    assert lay.index[:, 0].tolist() == list(range(12))


def test_folders_are_part_of_the_name() -> None:
    names = [f"TimePoint_{t}/ZStep_{z}/w{w}.tif" for t in (1, 2) for z in (1, 2, 3) for w in (1, 2)]
    lay = parse_names(sorted(names, key=natural_key))
    assert lay.dims == ("T", "C", "Z")
    assert lay.shape == (2, 2, 3)


def test_position_folders() -> None:
    names = [f"Pos{p}/img_{t:03d}.tif" for p in range(3) for t in range(4)]
    lay = parse_names(sorted(names, key=natural_key))
    assert lay.dims[0] == "P" and lay.shape == (3, 4)


def test_gap_in_regular_sequence_is_a_missing_position() -> None:
    lay = parse_names([f"t{t}.tif" for t in (0, 1, 2, 4, 5)])
    assert lay.axes[0].values == (0, 1, 2, 3, 4, 5)
    assert lay.index[:, 0].tolist() == [0, 1, 2, 4, 5]


def test_sparse_values_are_not_gap_filled() -> None:
    lay = parse_names([f"w{w}_t{t}.tif" for w in (488, 561, 640) for t in (0, 1)])
    c = lay.dims.index("C")
    assert lay.axes[c].values == (488, 561, 640)


def test_names_without_one_structure_raise() -> None:
    with pytest.raises(LayoutError, match="do not share one structure"):
        parse_names(["a_1.tif", "b_1_2.tif"])


def test_template_and_regex_patterns_agree() -> None:
    names = lls_names()
    tmpl = parse_names(names, "{name}_ch{C}_CAM1_stack{T}_{wavelength}nm_{msec}msec_*.tif")
    rx = parse_names(
        names,
        r"(?P<name>.+)_ch(?P<C>\d+)_CAM1_stack(?P<T>\d+)_(?P<wavelength>\d+)nm_(?P<msec>\d+)msec_.*\.tif",
    )
    for lay in (tmpl, rx):
        assert lay.dims == ("T", "C")
        assert {c.name: c.dims for c in lay.coords} == {"wavelength": ("C",), "msec": ("T",)}
        assert lay.constants["name"] == "ex6-2_CamA"
    assert np.array_equal(tmpl.index, rx.index)


def test_pattern_with_channel_words() -> None:
    names = [
        f"img_{t:09d}_{ch}_{z:03d}.tif"
        for t in range(2)
        for ch in ("DAPI", "GFP-long")
        for z in range(3)
    ]
    lay = parse_names(sorted(names, key=natural_key), "img_{T}_{C}_{Z}.tif")
    assert lay.dims == ("T", "C", "Z")
    assert lay.axes[1].values == ("DAPI", "GFP-long")


def test_pattern_with_slash_matches_relative_path() -> None:
    names = [f"Pos{p}/img_{t}.tif" for p in range(2) for t in range(3)]
    lay = parse_names(names, "Pos{P}/img_{T}.tif")
    assert lay.dims == ("P", "T") and lay.shape == (2, 3)


def test_pattern_skips_files_it_does_not_match() -> None:
    names = ["a_t1.tif", "a_t2.tif", "b_t1.tif"]
    lay = parse_names(names, "a_t{T}.tif")
    assert lay.shape == (2,) and lay.unmatched == ("b_t1.tif",)


def test_pattern_that_matches_nothing() -> None:
    with pytest.raises(PatternError, match="matches none of the 15 file names"):
        parse_names(lls_names(), "foo_{T}.tif")


def test_a_lower_case_pattern_field_that_varies_on_its_own_is_an_axis() -> None:
    """The same rule as inference: a field that varies on its own is an axis of its own
    name (it used to be refused in patterns only); wells' rows and columns, say."""
    names = [f"img_t{t}_{k}ms.tif" for t in range(3) for k in (10, 20)]
    lay = parse_names(names, "img_t{T}_{ms}ms.tif")
    assert lay.dims == ("ms", "T") and lay.shape == (2, 3)
    assert [a.values for a in lay.axes] == [(10, 20), (0, 1, 2)]
    wells = [f"r{r:02d}c{c:02d}f{f:02d}p01-ch1sk1fk1fl1.tiff" for r in (2, 3) for c in (4, 5, 6)
             for f in (1, 2)]  # fmt: skip
    lay = parse_names(wells, "r{row}c{col}f{P}p01-ch1sk1fk1fl1.tiff")
    assert lay.dims == ("P", "row", "col") and lay.shape == (2, 2, 3)
    assert parse_names(names).dims == ("ms", "T")  # what inference makes of them too


def test_pattern_hiding_a_varying_part_gives_duplicates() -> None:
    with pytest.raises(DuplicatePositionError, match="map to the same position"):
        parse_names(lls_names(), "{name}_ch{C}_*.tif")


def test_pattern_without_fields() -> None:
    with pytest.raises(PatternError, match="names no field"):
        parse_names(["a.tif"], "a.tif")


def test_template_to_regex_escapes_literals() -> None:
    import re

    rx = re.compile(template_to_regex("a.b_{T:d}*.tif"))
    assert rx.fullmatch("a.b_12xyz.tif").group("T") == "12"
    assert rx.fullmatch("aXb_12.tif") is None


# --------------------------------------------------------------------------- bounded time
def _random_templates(seed: int, n: int) -> list[tuple[str, list[str]]]:
    """Templates of literals, fields and '*' with names both random and built from them."""
    import random

    rng = random.Random(seed)
    pieces = ["a", "_", "1", "b_", "/", ".", "*", "{F}", "{D:d}", "x"]
    out = []
    for _ in range(n):
        parts = []
        for k, p in enumerate(rng.choice(pieces) for _ in range(rng.randint(1, 7))):
            parts.append(p.replace("F", f"f{k}").replace("D", f"d{k}"))
        names = ["".join(rng.choice("ab_1/2.") for _ in range(rng.randint(0, 10)))]
        for _ in range(6):
            fill = {"*": (0, "a_1."), "{d": (1, "12"), "{f": (1, "a_1.")}
            name = ""
            for p in parts:
                lo, chars = next((v for k, v in fill.items() if p.startswith(k)), (None, ""))
                name += (
                    p
                    if lo is None
                    else "".join(rng.choice(chars) for _ in range(rng.randint(lo, 4)))
                )
            names.append(name)
        out.append(("".join(parts), names))
    return out


@pytest.mark.parametrize("search", [False, True], ids=["regex-when-cheap", "search-always"])
def test_template_matcher_captures_what_the_regex_captures(monkeypatch, search: bool) -> None:
    """Same match, same captures as today's regex: greedy '*' and {f:d}, lazy {f}."""
    import re

    from ndstack import _match

    if search:  # every name through the bounded search, none through re
        monkeypatch.setattr(_match, "_REGEX_PATHS", -1)
    matched = 0
    for template, names in _random_templates(7, 1500):
        rx = re.compile(template_to_regex(template))
        matcher = _match.TemplateMatcher(template)
        for name in names:
            m = rx.fullmatch(name)
            expected = None if m is None else m.groupdict()
            assert matcher.fullmatch(name) == expected, (template, name)
            matched += expected is not None
    assert matched > 5000  # most built names match: the captures were compared


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("template", "tail", "shape"),
    [
        ("*_*_*_*_*_*_*_*_{T}.tiff", "{i}.tif", None),  # the case: minutes before
        ("*_*_*_*_*_*_*_*_{T:d}.tif", "x{i}.tif", None),  # every literal there, no match
        ("*_*_*_*_*_*_*_*_{T:d}.tif", "_{i}.tif", (3,)),  # a match deep in the search
        ("{a}_{b}_{c}_{d}_{e}_{f}_{g}_{T:d}.tif", "x{i}.tif", None),
    ],
)
def test_pathological_templates_finish_in_well_under_a_second(template, tail, shape) -> None:
    import time

    names = ["_".join(["ab"] * 60) + tail.format(i=i) for i in range(3)]  # 180+ characters
    t0 = time.perf_counter()
    if shape is None:
        with pytest.raises(PatternError, match="matches none of the 3 file names"):
            parse_names(names, template)
    else:
        assert parse_names(names, template).shape == shape
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("regex", "why"),
    [
        (r"(?P<T>(a+)+)b", "repeats a group that itself holds an unbounded repeat"),
        (r"(?P<T>(.*)*)\.tif", "repeats a group that itself holds an unbounded repeat"),
        (r"(?P<T>(\w+\s?)*)x", "repeats a group that itself holds an unbounded repeat"),
        (r"(?P<T>(?:_[^/]+){2,})\.tif", "repeats a group that itself holds an unbounded repeat"),
        (r"(?P<a>.*)_(?P<b>.*)_(?P<c>.+)_(?P<d>.*)_(?P<T>.*)\.tif", "5 unbounded repeats"),
        (r".*_.*_\w+_[^_]+_(?P<T>.*)\.tif", "5 unbounded repeats"),
    ],
)
def test_user_regexes_that_can_backtrack_for_minutes_are_refused(regex, why) -> None:
    names = ["_".join(["ab"] * 60) + f"{i}.tif" for i in range(3)]
    with pytest.raises(PatternError, match=why) as err:
        parse_names(names, regex)
    assert "template" in str(err.value)  # says what to do instead


@pytest.mark.parametrize(
    "regex",
    [
        r"(?P<name>.+)_ch(?P<C>\d+)_CAM1_stack(?P<T>\d+)_.*\.tif",  # digit runs do not count
        r"(?P<a>.*)_(?P<b>.*)_(?P<c>.*)_(?P<T>\d+)\.tif",  # 3 broad repeats: allowed
        r"(?P<T>(?:ab_)*)ab0\.tif",  # a repeated group of literals
    ],
)
def test_ordinary_user_regexes_are_accepted(regex) -> None:
    names = [f"ab_ab_ab_{t}.tif" for t in range(3)] if "\\d" in regex else ["ab_ab0.tif"]
    if "CAM1" in regex:
        names = lls_names()
    assert parse_names(names, regex).used.size == len(names)


def test_the_plain_scan_refuses_the_same_regexes() -> None:
    """The fallback for a Python whose private regex parser changed."""
    from ndstack._match import _scan_text

    assert _scan_text(r"(a+)+b") == (True, 2)
    assert _scan_text(r"(\w+\s?)*x") == (True, 2)
    assert _scan_text(r"(?P<a>.*)_(?P<b>[*+]+)\.tif") == (False, 2)  # a class is skipped
    assert _scan_text(r"a\*b(c)+d{2,}") == (False, 2)


def test_channel_names_holding_digits_beside_others_are_one_word() -> None:
    """img_DAPI_t00 / img_Alexa488_t00 / img_Cy5_t00 (the issue's example): the names
    are aligned segment by segment, and a segment whose digits do not line up across the
    names is a word (a channel name), not a number."""
    names = [f"img_{c}_t{t:02d}.tif" for c in ("DAPI", "Alexa488", "Cy5") for t in range(3)]
    lay = parse_names(names)
    assert lay.dims == ("T", "C") and lay.shape == (3, 3)
    assert lay.axes[1].values == ("Alexa488", "Cy5", "DAPI")
    mixed = [f"exp1_{c}_z{z}_t{t}.tif" for c in ("GFP", "mCherry2", "Cy5") for z in range(2)
             for t in range(2)]  # fmt: skip
    lay = parse_names(mixed)
    assert lay.dims == ("T", "C", "Z") and lay.shape == (2, 3, 2)
    assert lay.constants == {"exp": 1}


def test_names_of_other_segments_still_say_so() -> None:
    with pytest.raises(LayoutError, match="do not share one structure"):
        parse_names(["img_DAPI_t00.tif", "img_Cy5_extra_t00.tif", "img_GFP_t01.tif"])


def test_a_uuid_in_every_name_is_a_value_of_the_file() -> None:
    """MetaXpress names every image ``<plate>_<well>_s<site>_w<wavelength><GUID>.tif``:
    the GUID is an identifier of the file (a coordinate over the axes), not numbers that
    break the structure, and never an axis."""
    import uuid

    names = [f"plate_B{r:02d}_s{s}_w{w}{str(uuid.uuid4()).upper()}.tif"
             for r in (2, 3) for s in (1, 2) for w in (1, 2)]  # fmt: skip
    lay = parse_names(names)
    assert lay.dims == ("P", "well", "C") and lay.shape == (2, 2, 2)
    assert lay.axes[1].values == ("B02", "B03")  # one row of a plate: still wells
    (coord,) = lay.coords
    assert coord.name == "id" and coord.dims == ("P", "well", "C")
    by_name = {n: n[-40:-4] for n in names}
    first = names[lay.used[0]]
    assert coord.values[tuple(lay.index[0])] == by_name[first]


def test_a_regex_is_searched_for_in_the_relative_path_and_a_template_matched_whole() -> None:
    names = [f"pos{p}/run_t{t}_ch{c}.tif" for p in range(2) for t in range(3) for c in range(2)]
    lay = parse_names(names, r"pos(?P<P>\d+)/.*_t(?P<T>\d+)_ch(?P<C>\d)")  # part of the path
    assert lay.dims == ("P", "T", "C") and lay.shape == (2, 3, 2) and len(lay.used) == 12
    # the same fields as a template must match the whole base name: none does
    with pytest.raises(PatternError, match="matches none"):
        parse_names(names, "_t{T:d}")
    anchored = parse_names(
        [*names[:6], "pos0/extra_t1_ch0.tif.bak"], r"_t(?P<T>\d+)_ch(?P<C>\d+)\.tif$"
    )
    assert anchored.unmatched == ("pos0/extra_t1_ch0.tif.bak",)


def test_frames_named_by_acquisition_time_make_one_time_axis_in_time_order() -> None:
    stamps = ["14-22-07.123", "14-22-07.623", "14-22-08.124", "14-23-59.999", "15-00-00.010"]
    names = [f"cam1_2024-03-05_{s}.tif" for s in reversed(stamps)]  # any input order
    lay = parse_names(names)
    assert lay.dims == ("T",) and lay.shape == (5,)  # not hours x minutes x seconds x ms
    (time,) = lay.coords
    assert time.name == "time" and time.values.dtype == np.dtype("datetime64[us]")
    expected = [np.datetime64(f"2024-03-05T{s[:2]}:{s[3:5]}:{s[6:]}", "us") for s in stamps]
    assert time.values.tolist() == [e.item() for e in expected]
    assert lay.index[:, 0].tolist() == [4, 3, 2, 1, 0]
    assert "order of the files by 'time'" in lay.axes[0].how


def test_two_cameras_with_their_own_time_stamps_are_ordered_within_each() -> None:
    names = [
        f"cam{c}_20240305T1422{s:02d}.{ms:03d}.tif"
        for c, ms in ((1, 100), (2, 150))
        for s in range(4)
    ]
    lay = parse_names(names)
    assert lay.dims == ("cam", "T") and lay.shape == (2, 4)  # full, not 2 x 8 half empty
    (time,) = lay.coords
    assert time.dims == ("cam", "T")
    assert str(time.values[1, 3]) == "2024-03-05T14:22:03.150000"
    assert "within each cam" in lay.axes[1].how


def test_a_counter_split_over_fields_makes_one_axis_when_the_grid_would_be_sparse() -> None:
    # three runs of five frames, numbered on: a 3 x 15 grid would be a third full
    names = [f"scan_{a:03d}_{b:04d}.tif" for a in range(3) for b in range(a * 5, a * 5 + 5)]
    lay = parse_names(names)
    assert lay.dims == ("T",) and lay.shape == (15,)
    order = [names[i] for i in np.argsort(lay.index[:, 0])]
    assert order == names
    assert {c.name for c in lay.coords} == {"field1", "field2"}
    assert "grid 33.33% full" in lay.axes[0].how
    # a full grid of the same fields stays a grid
    full = [f"scan_{a:03d}_{b:04d}.tif" for a in range(3) for b in range(5)]
    assert parse_names(full).shape == (3, 5)


def test_dates_that_are_no_dates_stay_numbers() -> None:
    names = [f"img_2024-13-{d:02d}_10-00-00.tif" for d in range(1, 4)]  # month 13
    lay = parse_names(names)
    assert lay.dims == ("field3",) and lay.shape == (3,)


def test_a_stray_file_first_in_order_does_not_hide_the_identifiers_of_the_others() -> None:
    import uuid

    names = [f"plate_B0{r}_s{s}_w1{str(uuid.uuid4()).upper()}.tif" for r in (2, 3) for s in (1, 2)]
    lay = parse_names(["AAA_notes_1.tif", *names, *[n.replace("_w1", "_w2") for n in names]])
    assert lay.unmatched == ("AAA_notes_1.tif",)
    assert lay.dims == ("P", "well", "C") and {c.name for c in lay.coords} == {"id"}


def test_a_camera_that_dropped_a_frame_is_not_shifted_against_the_other() -> None:
    """Ranks within each camera line up only when no camera lacks a frame: with one
    missing, the frames are ordered over all files (a sparser grid, no frame misplaced)."""
    names = [
        f"img_z{z}_2024-03-05_14-22-{t * 10 + z:02d}.tif"
        for t in range(3)
        for z in range(2)
        if (t, z) != (0, 1)
    ]
    lay = parse_names(names)
    t_of = {}  # files at one T must come from one timepoint (seconds // 10)
    for i, n in enumerate(names):
        t_of.setdefault(int(lay.index[i][lay.dims.index("T")]), set()).add(int(n[-6:-4]) // 10)
    assert all(len(ts) == 1 for ts in t_of.values()), t_of


def test_labelled_numbers_stay_axes_beside_time_stamps() -> None:
    names = [f"mouse{m}_2024-03-0{m}_12-{t:02d}-00.tif" for m in (1, 2, 3) for t in range(4)]
    lay = parse_names(names)
    assert lay.dims == ("mouse", "T") and lay.shape == (3, 4)


def test_a_date_and_a_counter_are_no_time_stamp() -> None:
    lay = parse_names([f"run_20240305_{i:06d}.tif" for i in range(5)])
    assert "time" not in {c.name for c in lay.coords}
    assert lay.shape == (5,)


@pytest.mark.parametrize(
    "names",
    [
        [f"img_P{p}_T{t}.tif" for p in (1, 2) for t in (1, 2)],  # P: a position
        [f"E{n}_t{t}.tif" for n in (1, 2, 3) for t in (1, 2)],  # embryos
        [f"img_{a}{i}.tif" for a in "abc" for i in (1, 2, 3)],  # a 3 x 3 grid
        [f"img_A{i:03d}.tif" for i in (1, 2, 3)],  # three digits: no plate column
    ],
)
def test_letters_before_numbers_are_no_wells_unless_they_look_like_plates(names) -> None:
    assert "well" not in parse_names(names).dims
