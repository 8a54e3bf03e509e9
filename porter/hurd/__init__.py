"""The Hurd target: source sets and their generations, the i686-gnu cross sysroot
built from them, and the check of a tree as the Hurd's own make builds it."""
