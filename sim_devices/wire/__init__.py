"""Wire-level simulators: instruments answering real protocols on a pty or socket.

Written from the instruments' documentation, never from our drivers, so a driver test against
them can catch a misreading on either side.
"""
