"""Fair use of costly hardware: caps on running servers per profile or pool (docs/fair-use.md)."""
