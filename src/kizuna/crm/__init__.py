"""Write-back to the CRM: kizuna's findings as account fields and owned tasks (docs/crm.md)."""
