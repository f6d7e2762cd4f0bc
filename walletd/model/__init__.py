"""Pure model code: key types and signers (placeholder until the restructure lands)."""
