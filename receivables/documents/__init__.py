"""Documents: PDFs with WeasyPrint, spreadsheets with openpyxl, the stored-documents folder."""
