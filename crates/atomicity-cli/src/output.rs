//! Plain-text tables for people (scripts use `--json`).

use atomicity_node::api::{BalanceRow, HistoryRow};

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// `atomicity balance`.
pub fn balance_table(rows: &[BalanceRow]) -> String {
    if rows.is_empty() {
        return "no credit lines yet; open one with `atomicity line set`\n".into();
    }
    table(
        &[
            "PEER",
            "ASSET",
            "NET",
            "ACCEPT",
            "ISSUE",
            "PENDING IN",
            "PENDING OUT",
        ],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r.peer.clone(),
                    r.asset.clone(),
                    r.net.clone(),
                    r.accept.clone(),
                    r.issue.clone(),
                    r.pending_in.clone(),
                    r.pending_out.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// `atomicity history`.
pub fn history_table(rows: &[HistoryRow]) -> String {
    if rows.is_empty() {
        return "no payments yet\n".into();
    }
    table(
        &["DIRECTION", "PEER", "AMOUNT", "ASSET", "STATUS", "MEMO"],
        &rows
            .iter()
            .map(|r| {
                let status = match &r.reason {
                    Some(why) => format!("{} ({why})", r.status),
                    None => r.status.clone(),
                };
                vec![
                    r.direction.clone(),
                    r.peer.clone(),
                    r.amount.clone(),
                    r.asset.clone(),
                    status,
                    r.memo.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
