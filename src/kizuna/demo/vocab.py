"""Word lists and weights the demo data is composed from; every string here must encode as CP932."""

from __future__ import annotations

# (industry, weight, words that end a company name in that industry)
INDUSTRIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("製造業", 20, ("精機", "工業", "製作所", "電機", "化学", "金属", "機械", "技研", "工機", "産業")),
    ("小売業", 12, ("商事", "商店", "ストア", "リテール", "物産", "販売", "マート")),
    (
        "IT・通信",
        18,
        (
            "システムズ",
            "ソフト",
            "テクノロジー",
            "ソリューションズ",
            "ネットワークス",
            "データ",
            "デジタル",
            "情報サービス",
            "ラボ",
        ),
    ),
    ("金融", 6, ("ファイナンス", "キャピタル", "証券", "リース", "アセットマネジメント")),
    ("医療", 7, ("メディカル", "ヘルスケア", "医療サービス", "薬品", "ファーマ", "ケアサービス")),
    ("物流", 7, ("運輸", "物流", "ロジスティクス", "運送", "倉庫", "エクスプレス")),
    ("不動産", 7, ("不動産", "地所", "ハウジング", "建物", "エステート")),
    ("教育", 4, ("教育", "ゼミナール", "スクール", "エデュケーション", "出版")),
    ("建設", 8, ("建設", "工務店", "土木", "建工", "設計", "ホーム")),
    ("飲食・宿泊", 4, ("フーズ", "食品", "ダイニング", "観光", "ホテルズ")),
    ("人材・サービス", 7, ("人材サービス", "キャリア", "スタッフィング", "ワークス", "サービス")),
)

# The first half of a company name: places, family names, auspicious words.
COMPANY_STEMS: tuple[str, ...] = (
    "東洋", "日本", "大和", "富士", "三和", "中央", "東邦", "北斗", "昭和", "協和", "新日本", "関西",
    "東京", "名古屋", "北海道", "九州", "瀬戸内", "青葉", "桜井", "松本", "高橋", "山本", "丸和", "丸山",
    "大成", "光和", "明治", "大同", "朝日", "旭", "千代田", "日進", "共栄", "太陽", "双葉", "若葉",
    "白山", "第一", "平和", "栄光", "信和", "豊田", "浜松", "湘南", "横浜", "神戸", "京都", "奈良",
    "広島", "仙台", "札幌", "福岡", "熊本", "岡山", "金沢", "静岡", "北陸", "東北", "西日本", "アサヒ",
    "ミライ", "サクラ", "ヒカリ", "アオバ", "グローバル", "ネクスト", "ユニオン", "みらい", "やまと", "三栄",
    "東和", "大栄", "日栄", "三協", "新光", "光陽", "明和", "昭栄", "富士見", "長野", "松江", "徳島",
    "高松", "松山", "高知", "宮崎", "鹿島", "那覇", "盛岡", "秋田", "山形", "福島", "水戸", "宇都宮",
    "前橋", "甲府", "岐阜", "津", "大津", "和歌山", "鳥取", "山陰", "山陽", "四国", "南海", "東海",
    "中部", "近畿", "日東", "日西", "北辰", "泉", "菱和", "葵", "橘", "若松", "緑", "青山",
)  # fmt: skip

# (prefix, suffix, weight): 株式会社 stands before or after the name about equally often.
LEGAL_FORMS: tuple[tuple[str, str, float], ...] = (
    ("株式会社", "", 48),
    ("", "株式会社", 44),
    ("有限会社", "", 5),
    ("", "合同会社", 3),
)

# Foreign customers are mostly Japanese companies' subsidiaries and partners abroad.
COUNTRIES: tuple[tuple[str, float, str], ...] = (
    ("US", 30, "Inc."),
    ("SG", 25, "Pte. Ltd."),
    ("TW", 15, "Co., Ltd."),
    ("KR", 10, "Co., Ltd."),
    ("GB", 10, "Ltd."),
    ("TH", 10, "Co., Ltd."),
)
FOREIGN_SHARE = 0.03
FOREIGN_STEMS: tuple[str, ...] = (
    "Pacific", "Summit", "Harbor", "Blue River", "Evergreen", "Northwind", "Lion City", "Golden Gate",
    "Meridian", "Orchid", "Silverline", "Redwood", "Bright Path", "Crescent", "Atlas", "Horizon",
)  # fmt: skip
FOREIGN_WORDS: tuple[str, ...] = (
    "Trading", "Systems", "Logistics", "Manufacturing", "Foods", "Digital", "Partners", "Engineering",
)  # fmt: skip

# Rough share of business establishments, with Tokyo over-weighted as SaaS buyers are.
PREFECTURES: tuple[tuple[str, float], ...] = (
    ("東京都", 30), ("大阪府", 10), ("神奈川県", 8), ("愛知県", 7), ("埼玉県", 4), ("千葉県", 3.5),
    ("福岡県", 4), ("北海道", 3), ("兵庫県", 3.5), ("京都府", 2), ("静岡県", 2), ("広島県", 1.8),
    ("宮城県", 1.5), ("茨城県", 1.2), ("新潟県", 1), ("長野県", 1), ("岐阜県", 0.9), ("群馬県", 0.8),
    ("栃木県", 0.8), ("岡山県", 0.8), ("熊本県", 0.7), ("三重県", 0.7), ("鹿児島県", 0.6), ("沖縄県", 0.6),
    ("滋賀県", 0.5), ("奈良県", 0.5), ("愛媛県", 0.5), ("石川県", 0.5), ("富山県", 0.4), ("長崎県", 0.4),
    ("山口県", 0.4), ("福島県", 0.5), ("大分県", 0.35), ("青森県", 0.3), ("岩手県", 0.3), ("秋田県", 0.25),
    ("山形県", 0.3), ("和歌山県", 0.3), ("香川県", 0.35), ("徳島県", 0.2), ("高知県", 0.2), ("佐賀県", 0.25),
    ("宮崎県", 0.3), ("福井県", 0.3), ("山梨県", 0.3), ("鳥取県", 0.15), ("島根県", 0.15),
)  # fmt: skip

# (kanji, romaji); romaji are unique so that e-mail addresses built from them are too.
SURNAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"), ("伊藤", "ito"),
    ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"), ("小林", "kobayashi"), ("加藤", "kato"),
    ("吉田", "yoshida"), ("山田", "yamada"), ("佐々木", "sasaki"), ("山口", "yamaguchi"), ("松本", "matsumoto"),
    ("井上", "inoue"), ("木村", "kimura"), ("林", "hayashi"), ("斎藤", "saito"), ("清水", "shimizu"),
    ("山崎", "yamazaki"), ("森", "mori"), ("池田", "ikeda"), ("橋本", "hashimoto"), ("阿部", "abe"),
    ("石川", "ishikawa"), ("山下", "yamashita"), ("中島", "nakajima"), ("石井", "ishii"), ("小川", "ogawa"),
    ("前田", "maeda"), ("岡田", "okada"), ("長谷川", "hasegawa"), ("藤田", "fujita"), ("後藤", "goto"),
    ("近藤", "kondo"), ("村上", "murakami"), ("遠藤", "endo"), ("青木", "aoki"), ("坂本", "sakamoto"),
    ("福田", "fukuda"), ("太田", "ota"), ("西村", "nishimura"), ("藤井", "fujii"), ("金子", "kaneko"),
    ("岡本", "okamoto"), ("藤原", "fujiwara"), ("中野", "nakano"), ("三浦", "miura"), ("原田", "harada"),
    ("中川", "nakagawa"), ("松田", "matsuda"), ("竹内", "takeuchi"), ("小野", "ono"), ("田村", "tamura"),
    ("中山", "nakayama"), ("和田", "wada"), ("石田", "ishida"), ("森田", "morita"), ("上田", "ueda"),
    ("原", "hara"), ("内田", "uchida"), ("柴田", "shibata"), ("酒井", "sakai"), ("工藤", "kudo"),
    ("横山", "yokoyama"), ("宮崎", "miyazaki"), ("宮本", "miyamoto"), ("高木", "takagi"), ("渡部", "watabe"),
)  # fmt: skip
GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("太郎", "taro"), ("健太", "kenta"), ("翔太", "shota"), ("大輔", "daisuke"), ("拓也", "takuya"),
    ("直樹", "naoki"), ("誠", "makoto"), ("浩", "hiroshi"), ("健一", "kenichi"), ("剛", "tsuyoshi"),
    ("隆", "takashi"), ("亮", "ryo"), ("和也", "kazuya"), ("雄一", "yuichi"), ("修", "osamu"),
    ("学", "manabu"), ("悠斗", "yuto"), ("大樹", "daiki"), ("蓮", "ren"), ("陽介", "yosuke"),
    ("康介", "kosuke"), ("智也", "tomoya"), ("哲也", "tetsuya"), ("秀樹", "hideki"), ("正人", "masato"),
    ("花子", "hanako"), ("美咲", "misaki"), ("陽子", "yoko"), ("恵子", "keiko"), ("由美", "yumi"),
    ("真由美", "mayumi"), ("直美", "naomi"), ("智子", "tomoko"), ("裕子", "yuko"), ("愛", "ai"),
    ("彩", "aya"), ("舞", "mai"), ("千尋", "chihiro"), ("久美子", "kumiko"), ("明美", "akemi"),
    ("沙織", "saori"), ("香織", "kaori"), ("奈々", "nana"), ("さくら", "sakura"), ("結衣", "yui"),
    ("葵", "aoi"), ("美穂", "miho"), ("理恵", "rie"), ("亜希子", "akiko"), ("紀子", "noriko"),
)  # fmt: skip
FOREIGN_SURNAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Tan", "Lim", "Lee", "Chen", "Wang",
    "Kim", "Park", "Nguyen", "Wong", "Evans", "Clark", "Lin", "Chua", "Suzuki", "Walker",
)  # fmt: skip
FOREIGN_GIVEN_NAMES: tuple[str, ...] = (
    "John", "Emily", "Michael", "Sarah", "David", "Jessica", "Wei", "Mei", "Daniel", "Grace",
    "James", "Olivia", "Kevin", "Rachel", "Brian", "Hannah", "Jason", "Sophie", "Ryan", "Chloe",
)  # fmt: skip

# (role, weight as primary contact, weight as any other contact)
CONTACT_ROLES: tuple[tuple[str, float, float], ...] = (
    ("決裁者", 25, 20),
    ("管理者", 65, 20),
    ("担当者", 10, 45),
    ("経理", 0, 15),
)

# Our own staff. ".example" is a reserved top-level domain, so none of these can reach anyone.
STAFF_DOMAIN = "kizuna-demo.example"
ACCOUNT_EXECUTIVES: tuple[str, ...] = (
    "tanaka.k", "suzuki.h", "takahashi.m", "watanabe.y", "ito.s", "nakamura.t", "kobayashi.r", "kato.a",
    "yoshida.n", "yamada.d", "sasaki.e", "matsumoto.j", "inoue.k", "kimura.m", "hayashi.s", "shimizu.t",
    "mori.y", "ikeda.h", "hashimoto.r", "ishikawa.n",
)  # fmt: skip
CS_MANAGERS: tuple[str, ...] = (
    "cs.aoki.m", "cs.sakamoto.y", "cs.fukuda.a", "cs.nishimura.k", "cs.fujii.s", "cs.okamoto.t",
    "cs.miura.e", "cs.harada.r", "cs.matsuda.h", "cs.ono.n", "cs.tamura.k", "cs.wada.m",
)  # fmt: skip
INSIDE_SALES: tuple[str, ...] = (
    "is.ueda.s", "is.uchida.k", "is.shibata.y", "is.sakai.m", "is.kudo.a", "is.yokoyama.t",
    "is.miyazaki.r", "is.takagi.h",
)  # fmt: skip


def staff_emails(pool: tuple[str, ...]) -> list[str]:
    """Addresses of our staff in a pool, at the reserved demo domain."""
    return [f"{name}@{STAFF_DOMAIN}" for name in pool]


CHURN_REASONS: tuple[tuple[str, float], ...] = (
    ("価格", 24),
    ("機能不足", 16),
    ("競合へ移行", 18),
    ("事業縮小", 12),
    ("利用頻度低下", 20),
    ("担当者退職", 5),
    ("社内システム統合", 5),
)
PLAN_CHANGE_REASON = "プラン変更"  # ends a row that a plan change replaced; it is not churn

TICKET_CATEGORIES: tuple[tuple[str, float], ...] = (
    ("操作方法", 34),
    ("不具合", 18),
    ("請求・契約", 12),
    ("機能要望", 14),
    ("データ連携", 12),
    ("アカウント・権限", 8),
    ("解約・ダウングレード相談", 2),
)

# (activity type, outcome or "" for none, weight)
ACTIVITY_KINDS: tuple[tuple[str, str, float], ...] = (
    ("call", "conversation", 18),
    ("call", "no_answer", 14),
    ("call", "voicemail", 5),
    ("call", "meeting_booked", 3),
    ("email", "sent", 21),
    ("email", "replied", 11),
    ("email", "bounced", 1),
    ("email", "meeting_booked", 2),
    ("meeting", "completed", 10),
    ("meeting", "rescheduled", 1.2),
    ("meeting", "no_show", 0.6),
    ("visit", "completed", 2.5),
    ("visit", "rescheduled", 0.2),
    ("note", "", 10),
)
