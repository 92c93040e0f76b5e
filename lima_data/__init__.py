"""lima-data: build LIMA-style supervised fine-tuning sets and fine-tune on them.

The curation side (build, report) imports no torch; see DESIGN.md section 3.
"""

__version__ = "0.1.0"
