"""What people look at: the KPI report, mart exports and the reps' call list workbook."""
