"""Statistical disclosure control: the public release as a pure core (SPEC §6).

Arrays in, arrays out: no SQL, no files, no web framework. ``store`` counts incidents per
unit, month and offense; this package turns those counts into the one table of public
cells per unit family and year, decides which cells are withheld, and audits the
decision against an attacker who holds every published figure (docs/privacy.md).
"""
