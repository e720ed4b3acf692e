"""zoo-siglip: SigLIP / SigLIP 2 vision encoders and Honeybee's C-Abstractor, as a zoo plugin.

Nothing is imported here: zoo lists the components from the entry points and reads their docstrings from
the source files; ``zoo_siglip.encoder`` and ``zoo_siglip.cabstractor`` load when a component is built.
"""
