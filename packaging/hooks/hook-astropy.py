# Replaces the contrib hook for astropy, which imports every astropy submodule to list them and fails when
# one of them (astropy.visualization.wcsaxes) skips itself through pytest. Oddscope reads FITS files and
# uses ZScaleInterval: astropy.io.fits and astropy.visualization's interval code, plus the data and metadata.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

datas = collect_data_files("astropy") + copy_metadata("astropy") + copy_metadata("numpy")
hiddenimports = collect_submodules("astropy.io.fits") + ["astropy.visualization.interval",
                                                          "astropy.visualization.stretch"]
