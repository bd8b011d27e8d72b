"""The report's words, as data: every label and sentence in Japanese and English, and churn-reason codes."""

from __future__ import annotations

# One line per label: (Japanese, English).
LABELS: dict[str, tuple[str, str]] = {
    "title": ("既存顧客 KPI レポート", "Existing-customer KPI report"),
    "as_of": ("基準日", "As of"),
    "reporting_month": ("報告月", "Reporting month"),
    "in_progress": (
        "{month} は進行中です（{as_of} 時点の途中経過）。グラフと表は締まった最新の月 {reporting} までです",
        "{month} is in progress (month to date as of {as_of}): charts and tables stop at {reporting}, "
        "the latest complete month",
    ),
    "in_progress_stale": (
        "{month} はマート作成時点で進行中でした（途中経過）。グラフと表は締まった最新の月 {reporting} までです",
        "{month} was in progress when the marts were built (month to date): charts and tables stop at {reporting}, "
        "the latest complete month",
    ),
    "month": ("月", "Month"),
    "series": ("系列", "Series"),
    "missing_mart": ("まだ利用できません（マート {mart} がありません）", "not available yet (mart {mart} missing)"),
    "missing_column": (
        "まだ利用できません（マート {mart} に列 {column} がありません）",
        "not available yet (column {column} missing in mart {mart})",
    ),
    "no_rows": ("{mart} に {month} の行がありません", "{mart} has no row for {month}"),
    "sources": ("出典", "Sources"),
    "contents": ("目次", "Contents"),
    "warehouse": ("ウェアハウス", "Warehouse"),
    "png": ("PNG", "PNG"),
    "section_failed": ("このセクションの作成に失敗しました", "this section failed"),
    "stale": (
        "マートの最新月は {month} です（基準日の月より前：ウェアハウスが古い可能性があります）",
        "the marts' latest month is {month}, before the as-of month: the warehouse may be stale",
    ),
    "font_missing": (
        "日本語フォントが見つかりません：PNG の日本語が表示されない可能性があります（fonts-noto-cjk を導入）",
        "no Japanese font found: Japanese text in the PNGs may not render (install fonts-noto-cjk)",
    ),
    # bridge
    "bridge": ("MRR ブリッジ", "MRR bridge"),
    "starting_mrr": ("期首 MRR", "Starting MRR"),
    "new_mrr": ("新規", "New"),
    "expansion_mrr": ("拡大", "Expansion"),
    "reactivation_mrr": ("再開", "Reactivation"),
    "contraction_mrr": ("縮小", "Contraction"),
    "churned_mrr": ("解約", "Churn"),
    "fx_impact_mrr": ("為替", "FX"),
    "ending_mrr": ("期末 MRR", "Ending MRR"),
    "bridge_mismatch": (
        "内訳の合計が期末 MRR と {diff} 異なります",
        "the movements differ from ending MRR by {diff}",
    ),
    # trend
    "trend": ("MRR と ARR の推移", "MRR and ARR trend"),
    "mrr": ("MRR", "MRR"),
    "arr": ("ARR（MRR × 12）", "ARR (MRR × 12)"),
    "customers": ("顧客数", "Customers"),
    "arpa": ("顧客単価（ARPA）", "ARPA"),
    # retention
    "retention": ("NRR と GRR の推移", "NRR and GRR trend"),
    "nrr": ("NRR（月次）", "NRR (monthly)"),
    "grr": ("GRR（月次）", "GRR (monthly)"),
    "trailing_12m_nrr": ("NRR（直近12か月）", "NRR (trailing 12 months)"),
    "trailing_12m_grr": ("GRR（直近12か月）", "GRR (trailing 12 months)"),
    "monthly": ("月次", "Monthly"),
    "trailing": ("直近12か月", "Trailing 12 months"),
    "rate": ("率", "Rate"),
    # churn
    "churn": ("解約率", "Churn rates"),
    "customer_churn_rate": ("顧客解約率", "Customer churn rate"),
    "gross_revenue_churn_rate": ("グロス収益解約率", "Gross revenue churn rate"),
    "net_revenue_churn_rate": ("ネット収益解約率", "Net revenue churn rate"),
    # cohorts
    "cohorts": ("コホート継続率", "Cohort retention"),
    "cohort_month": ("開始月", "Cohort"),
    "months_since_start": ("経過月数", "Months since start"),
    "logo_retention_rate": ("顧客継続率", "Logo retention"),
    "net_mrr_retention_rate": ("MRR 継続率", "Net MRR retention"),
    # ranks
    "ranks": ("ランク A/B/C", "Rank A/B/C"),
    "rank": ("ランク", "Rank"),
    "rank_customers": ("ランク別の顧客数", "Customers by rank"),
    "rank_mrr": ("ランク別の MRR", "MRR by rank"),
    "share_of_mrr": ("MRR 構成比", "Share of MRR"),
    "rank_movement": ("ランクの移動（前回 {previous} → 今回）", "Rank movement (previous report {previous} → now)"),
    "previous_rank": ("前回のランク", "Previous rank"),
    "current_rank": ("今回のランク", "Current rank"),
    "no_rank": ("なし", "none"),
    "rank_basis": (
        "ランクは {as_of} 時点、顧客数と MRR は {month} の値です（{none}：{month} に契約があり現在ランクのない顧客）",
        "Ranks as of {as_of}; customers and MRR of {month} ({none}: paying then, without a rank now)",
    ),
    "no_snapshot": (
        "ランクの移動はまだ表示できません（前回のレポートの記録がありません；今回の記録を保存しました）",
        "rank movement not available yet (no earlier report recorded ranks; this one did)",
    ),
    # existing revenue
    "existing": ("既存顧客の売上（企業規模・継続期間別）", "Existing-customer revenue by company size and tenure"),
    "company_size": ("企業規模（従業員数）", "Company size (employees)"),
    "tenure": ("継続期間（月）", "Tenure (months)"),
    "existing_mrr": ("既存顧客 MRR", "Existing MRR"),
    "band": ("区分", "Band"),
    "band_unknown": ("不明", "unknown"),
    "starting_customers": ("期首顧客数", "Starting customers"),
    "churned_customers": ("解約顧客数", "Churned customers"),
    # churn reasons
    "reasons": ("解約理由（直近12か月）", "Churn reasons (last 12 months)"),
    "reason": ("理由", "Reason"),
    # inside sales
    "inside_sales": ("インサイドセールス KPI", "Inside-sales KPIs"),
    "activity": ("活動（アプローチ・有効会話）", "Activity (accounts approached, effective conversations)"),
    "intermediate": ("中間指標（CSQL・商談化）", "Intermediate (CSQLs, to opportunity)"),
    "final": ("成果（受注した拡大 MRR）", "Outcome (won expansion MRR)"),
    "accounts_approached": ("アプローチ顧客数", "Accounts approached"),
    "effective_conversations": ("有効会話数", "Effective conversations"),
    "csqls_created": ("CSQL 数", "CSQLs created"),
    "csqls_to_opportunity": ("商談化数", "CSQLs to opportunity"),
    "csql_to_opportunity_rate": ("商談化率", "CSQL → opportunity rate"),
    "won_expansion_mrr": ("受注した拡大 MRR", "Won expansion MRR"),
    "share_of_expansion_mrr": ("拡大 MRR に占める割合", "Share of expansion MRR"),
    "nrr_contribution": ("NRR への寄与", "NRR contribution"),
    "count": ("件数", "Count"),
    # inside sales per rep (inside_sales_kpis_monthly_by_owner)
    "inside_sales_by_rep": ("インサイドセールス KPI（担当者別）", "Inside-sales KPIs by rep"),
    "rep": ("担当者", "Rep"),
    "team_total": ("チーム合計", "Team total"),
    "rep_trailing": ("直近{months}か月（{window}）", "trailing {months} months ({window})"),
    "csqls_handed_off": ("AE への引き渡し", "Handed off"),
    "csqls_accepted": ("AE が受諾", "Accepted"),
    "csqls_rejected": ("AE が却下", "Rejected"),
    "csqls_received": ("引き渡しを受けた CSQL", "CSQLs received"),
    "csqls_sla_breached": ("SLA 超過", "SLA breaches"),
    "won_expansion_mrr_as_creator": ("受注した拡大 MRR（作成者として）", "Won expansion MRR as creator"),
    "won_expansion_mrr_as_closer": ("受注した拡大 MRR（クローザーとして）", "Won expansion MRR as closer"),
    "as_creator": ("作成者として", "As creator"),
    "as_closer": ("クローザーとして", "As closer"),
    "rep_handoff": ("担当者別の CSQL と引き渡し", "CSQLs and hand-off by rep"),
    "rep_won": ("担当者別の受注した拡大 MRR", "Won expansion MRR by rep"),
    "rep_shared_credit": (
        "共有クレジット：受注した CSQL は作成者とクローザー（商談の担当者）の両方に全額を計上します（同一人物なら 1 回）。"
        "「作成者として」と「クローザーとして」の列はそれぞれ合計がチーム合計になるため、2 つの列を足さないでください。",
        "Shared credit: a won CSQL is credited in full to both its creator and its closer (the deal's owner; once "
        "when they are the same person), so the as-creator and the as-closer columns each add up to the team total: "
        "do not add the two together.",
    ),
    "rep_counting": (
        "CSQL は作成月に作成者へ、引き渡しを受けた CSQL と SLA 超過は作成月に引き渡し先へ、受注は受注月に計上します。"
        "2 人が接触した顧客はそれぞれのアプローチ顧客数に入りますが、チーム合計では 1 回です。"
        "直近{months}か月の値は各月の値の合計です。",
        "CSQLs count for their creator in the month created, CSQLs received and SLA breaches for the rep they were "
        "handed to in the month created, won MRR in the month won. An account two reps touched counts for each rep "
        "but once in the team total. The trailing {months} months sum the monthly figures.",
    ),
    "no_reps": (
        "{window} の担当者別の行がありません（{mart} に該当する担当者なし）",
        "no rep to show for {window} (no owner in {mart})",
    ),
    # campaigns
    "campaigns": ("キャンペーンの成果（配信群と対照群）", "Campaign performance (treatment vs holdout)"),
    "campaign": ("キャンペーン", "Campaign"),
    "variant": ("群", "Group"),
    "treatment": ("配信群", "treatment"),
    "holdout": ("対照群", "holdout"),
    "selected_customers": ("対象顧客数", "Customers"),
    "mrr_then": ("選定月の MRR", "MRR in selection month"),
    "mrr_now": ("現在の MRR", "MRR now"),
    "mrr_change": ("MRR 増減率", "MRR change"),
    "churned_since": ("その後の解約率", "Churned since"),
    # MRR change since selection (ops.campaign_recipients + customer_mrr_monthly): each group described, no lift
    "mrr_change_chart": ("選定後の MRR 増減率", "MRR change since selection"),
    "no_mrr_change": (
        "{month} までに選定され、選定月に MRR のある顧客がまだいないため、MRR 増減率は表示できません",
        "no MRR change to show yet: no campaign has customers selected by {month} who paid in their selection month",
    ),
    "no_holdout": (
        "対照群がまだありません（キャンペーンファイルの holdout_percent を設定してください）",
        "no holdout group yet (set holdout_percent in the campaign file)",
    ),
    # lift, as marts.campaign_lift has it (scope campaign, breakdown all)
    "lift_table": (
        "配信群と対照群の差（campaign_lift、キャンペーン全体、各顧客は初回のみ）",
        "Lift, treatment against holdout (campaign_lift; whole campaign, each customer once)",
    ),
    "window": ("期間", "Window"),
    "window_days": ("{days} 日", "{days} days"),
    "group_sizes": ("測定済み顧客数（配信群 / 対照群）", "Customers measured (treatment / holdout)"),
    "waiting": ("測定待ち（配信群 / 対照群）", "Waiting (treatment / holdout)"),
    "csql_rate": ("CSQL 率（配信群 / 対照群）", "CSQL rate (treatment / holdout)"),
    "csql_rate_lift": ("CSQL 率の差 [95% 信頼区間]", "CSQL rate lift [95% interval]"),
    "expansion_per_customer": (
        "顧客あたり拡大 MRR（配信群 / 対照群）",
        "Expansion MRR per customer (treatment / holdout)",
    ),
    "expansion_lift": ("顧客あたり拡大 MRR の差 [95% 信頼区間]", "Expansion MRR per customer lift [95% interval]"),
    "too_small": ("（対照群が少なく区間なし）", "(holdout too small for an interval)"),
    "no_campaign_lift": (
        "campaign_lift にはまだキャンペーンがありません",
        "no campaign in campaign_lift yet",
    ),
    "engagement": ("配信の反応", "Engagement"),
    "sent": ("送信数", "Sent"),
    "delivery_rate": ("到達率", "Delivery rate"),
    "human_open_rate": ("開封率", "Open rate"),
    "click_rate": ("クリック率", "Click rate"),
    "unsubscribe_rate": ("配信停止率", "Unsubscribe rate"),
    "run_id": ("実行 ID", "Run"),
    "template": ("テンプレート", "Template"),
    "locale": ("言語", "Locale"),
}

# Churn reasons that are codes rather than a CRM's words: kizuna's own (dbt doc block churn_reason), Stripe's
# cancellation_details (feedback, then reason; src/kizuna/connectors/stripe_mapping.py) and its period closes.
REASON_LABELS: dict[str, tuple[str, str]] = {
    "past_due": ("支払遅延（猶予期間の超過）", "Payment past due (grace period over)"),
    "unknown": ("理由の記録なし", "No reason recorded"),
    "too_expensive": ("価格が高い", "Too expensive"),
    "missing_features": ("機能不足", "Missing features"),
    "switched_service": ("他サービスへ移行", "Switched to another service"),
    "unused": ("利用していない", "Not used"),
    "customer_service": ("サポートへの不満", "Customer service"),
    "too_complex": ("使い方が難しい", "Too complex"),
    "low_quality": ("品質への不満", "Low quality"),
    "other": ("その他", "Other"),
    "cancellation_requested": ("解約の申し出", "Cancellation requested"),
    "payment_failed": ("支払の失敗", "Payment failed"),
    "payment_disputed": ("支払の異議申し立て", "Payment disputed"),
    "plan_change": ("プラン変更", "Plan change"),
    "item_removed": ("品目の削除", "Item removed"),
}
