"""Bugs of clerk-sync the proofs found, kept out of the generated histories until they are fixed
(a helper, not a test module).

Each flag is False while its bug stands, and names the strict xfail test that pins its minimal
example: when that test starts passing (XPASS fails the run), set the flag to True so the
proofs cover the case again.
"""

ACCEPTED_BY_A_DELETED_USER = True
"""An invitation may be accepted by a user the history deletes. While False: clerk-sync keeps
the invitation's pending version, which names no user, after its accepter's delete
(``test_convergence.py::test_invitation_accepted_by_a_deleted_user_converges``)."""

INVITED_BY_A_DELETED_USER = True
"""An invitation's inviter may be a user the history deletes. While False: an invitation
delivered after its inviter's delete keeps ``public_inviter_data`` (the scrub runs only at the
delete) (``test_convergence.py::test_invitation_of_a_deleted_inviter_is_scrubbed``)."""

UNLOCKED_NAMED_USER_DELETED = True
"""Concurrent deliveries may name, in a body, a deleted user they do not lock. While False: a
delivery locks its object and its parents, but not the user its body names when that user is
neither (an organization's ``created_by``, a deleted membership's member — deletes lock no
parent — an e-mail's recipient), so on PostgreSQL it can commit its body beside that user's
delete, whose erase cannot see it yet
(``test_convergence.py::test_erasure_waits_for_a_delivery_naming_the_user``). Concurrent
histories then have organizations created by users that stay, and no deleted membership of a
deleted user."""
