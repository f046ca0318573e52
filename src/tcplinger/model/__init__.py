"""Pure vocabulary shared by every stage: no I/O, no other tcplinger imports."""
