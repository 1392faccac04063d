"""The one exception type for mistakes a user can fix (bad config, bad data, missing file).

The CLI prints such an error as a single line and exits with status 2; anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's input, described in one line that names it."""
