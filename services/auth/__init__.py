"""Identity: Firebase Auth sign-in and token refresh, or the local dev identity offline."""
