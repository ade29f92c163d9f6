"""Photon-HDF5 (format 0.5) building blocks for the HDF5 tag writer: the field descriptions the spec mandates and
small h5py helpers that create each node with its ``TITLE``.

Photon-HDF5 (photon-hdf5.org) requires every node outside ``/user`` to carry the spec's own description as its
``TITLE`` attribute, strings to be fixed-length byte strings (PyTables cannot read variable-length ones) and
scalars to be 0-d datasets.  The descriptions below are the spec's text for the fields timetag writes; phconvert's
validator (``phconvert.hdf5.assert_valid_photon_hdf5``) compares them character for character.  Anything
timetag-specific (lost-data events, provenance) lives under ``/user/timetag``, the place the spec leaves free.
"""
from __future__ import annotations

import numpy as np

FORMAT_NAME = "Photon-HDF5"
FORMAT_VERSION = "0.5"
FORMAT_URL = "http://photon-hdf5.org/"

# the spec's descriptions (photon-hdf5_specs.json, format 0.5), keyed by path with /photon_data as the group
TITLES = {
    "/": "A file format for photon-counting detector based single-molecule spectroscopy experiments.",
    "/acquisition_duration": "Measurement duration in seconds.",
    "/description": "A user-defined comment describing the data file.",
    "/photon_data": "Group containing arrays of photon-data.",
    "/photon_data/timestamps": "Array of photon timestamps. Units specified in timestamps_units (defined in "
                               "timestamps_specs/).",
    "/photon_data/detectors": "Array of pixel IDs for each timestamp.",
    "/photon_data/timestamps_specs": "Specifications for timestamps.",
    "/photon_data/timestamps_specs/timestamps_unit": "Value of 1-unit timestamp-increment in seconds.",
    "/photon_data/measurement_specs": "Metadata necessary for interpretation of the particular type of measurement.",
    "/photon_data/measurement_specs/measurement_type": "Name of the measurement the data represents.",
    "/photon_data/measurement_specs/detectors_specs": "Mapping between the pixel IDs and the detection channels.",
    "/setup": "Information about the experimental setup.",
    "/setup/num_pixels": "Total number of detector pixels.",
    "/setup/num_spots": 'Number of excitation (or detection) "spots" in the sample.',
    "/setup/num_spectral_ch": "Number of distinct spectral bands which are acquired.",
    "/setup/num_polarization_ch": "Number of distinct polarization states which are acquired.",
    "/setup/num_split_ch": "Number of distinct detection channels detecting the same spectral band and polarization. "
                           "This value is > 1 when using a non-polarizing beam splitter.",
    "/setup/modulated_excitation": "True (i.e. 1) if there is any form of excitation modulation of excitation "
                                   "wavelength (as in us-ALEX or PAX) or polarization. This field is also True for "
                                   "pulse-interleaved excitation (PIE) or ns-ALEX measurements.",
    "/setup/excitation_alternated": "New in version 0.5. Indicates whether each excitation source is alternated "
                                    "(True, or 1) or not alternated (False, or 0).",
    "/setup/lifetime": "True (i.e. 1) if the measurement includes a nanotimes array of photon arrival times with "
                       "respect to a laser pulse (as in TCSPC measurements).",
    "/setup/excitation_cw": "For each excitation source, this field indicates whether excitation is continuous wave "
                            "(CW), True (i.e. 1), or pulsed, False (i.e. 0).",
    "/setup/detectors": "Metadata relative to each detector's pixel. Each field is an array with size equal to the "
                        "number of the detectors.",
    "/setup/detectors/id": "Detector IDs as they appear on /photon_data/detectors.",
    "/setup/detectors/counts": "Total number of counts detected by each detector.",
    "/identity": "Information about the Photon-HDF5 data file.",
    "/identity/filename": "Original file name of the current Photon-HDF5 file (i.e. file name at creation time).",
    "/identity/creation_time": "Creation time of the current Photon-HDF5 file.",
    "/identity/software": "Name of the software used to create the current Photon-HDF5 file.",
    "/identity/software_version": "Version of the software used to create current the Photon-HDF5 file.",
    "/identity/format_name": "Name of the file format.",
    "/identity/format_version": "Version for the Photon-HDF5 format.",
    "/identity/format_url": "Official URL for the Photon-HDF5 format.",
    "/provenance": "Information about the original data file.",
    "/provenance/filename": "File name of the original data file before conversion to Photon-HDF5.",
    "/provenance/filename_full": "File name (with full path) of the original data file before conversion to "
                                 "Photon-HDF5.",
}


# PyTables' own node attributes (phconvert and most Photon-HDF5 readers use PyTables): without FLAVOR "python" a
# 0-d string reads as a numpy array, not as bytes, and ``.read().decode()`` fails
_PYTABLES = {"group": {"CLASS": "GROUP", "VERSION": "1.0"},
             "scalar": {"CLASS": "ARRAY", "VERSION": "2.4", "FLAVOR": "python"},
             "array": {"CLASS": "ARRAY", "VERSION": "2.4", "FLAVOR": "numpy"},
             "growing": {"CLASS": "EARRAY", "VERSION": "1.1"}}


def _title(node, kind: str) -> None:
    node.attrs["TITLE"] = np.bytes_(TITLES[node.name].encode())
    for key, value in _PYTABLES[kind].items():
        node.attrs[key] = np.bytes_(value.encode())
    if kind == "growing":
        node.attrs["EXTDIM"] = np.int32(0)


def group(parent, name: str):
    """A spec group with its TITLE."""
    g = parent.create_group(name)
    _title(g, "group")
    return g


def string(parent, name: str, text: str):
    """A spec string field: a 0-d fixed-length byte string (UTF-8)."""
    ds = parent.create_dataset(name, data=np.bytes_(str(text).encode()))
    _title(ds, "scalar")
    return ds


def scalar(parent, name: str, value, dtype):
    """A spec scalar field: a 0-d dataset (its value may be rewritten later, also in SWMR mode)."""
    ds = parent.create_dataset(name, data=np.asarray(value, dtype=dtype))
    _title(ds, "scalar")
    return ds


def array(parent, name: str, dtype, *, data=None, growing: bool = False, **kw):
    """A spec array field; ``growing``: empty, chunked and resizable (filled while or after the data is written)."""
    if growing:
        ds = parent.create_dataset(name, shape=(0,), dtype=dtype, maxshape=(None,), **({"chunks": (64,)} | kw))
    else:
        ds = parent.create_dataset(name, data=np.asarray(data, dtype=dtype), **kw)
    _title(ds, "growing" if growing else "array")
    return ds


def mark_root(f) -> None:
    """The root's TITLE and the attributes that tell a Photon-HDF5 file from another HDF5 file."""
    _title(f, "group")
    f.attrs["PYTABLES_FORMAT_VERSION"] = np.bytes_(b"2.1")
    f.attrs["format_name"] = np.bytes_(FORMAT_NAME.encode())
    f.attrs["format_version"] = np.bytes_(FORMAT_VERSION.encode())
    f.attrs["format_url"] = np.bytes_(FORMAT_URL.encode())


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "FORMAT_URL", "TITLES", "group", "string", "scalar", "array",
           "mark_root"]
