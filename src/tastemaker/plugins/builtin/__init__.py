"""The plugins Tastemaker ships: each is an entry point of the ``tastemaker`` group, loaded like a third
party's and turned off the same way (``TASTEMAKER_PLUGINS=-skin_tone``): :mod:`.skin_tone` (skin-tone
fidelity), :mod:`.alt_text` (a text alternative for every output), :mod:`.contrast` (face legibility)."""
